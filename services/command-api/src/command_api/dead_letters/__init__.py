"""The dead letters slice."""
