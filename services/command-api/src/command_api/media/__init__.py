"""The media slice."""
