"""The sessions slice."""
