"""The mesh after the install: its state (namespaces, nodes, waypoints), enrolment, waypoints,
verification against ztunnel, and a list+watch that keeps the state live for the Mesh pane."""
