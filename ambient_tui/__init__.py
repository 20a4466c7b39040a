"""ambient-tui: install, verify and remove Istio ambient mesh on EKS. This package is the engine;
it never imports textual or screens (only cli.py does, lazily, to start the TUI)."""

__version__ = "0.1.0"
