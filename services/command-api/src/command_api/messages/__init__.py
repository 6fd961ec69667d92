"""The messages slice."""
