"""Plans built from settings (and, later, what the cluster shows)."""
