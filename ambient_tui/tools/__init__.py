"""helm, istioctl and kubectl: version detection and clear messages when one is missing or old."""
