"""The identity slice."""
