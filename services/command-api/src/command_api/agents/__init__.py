"""The agents slice."""
