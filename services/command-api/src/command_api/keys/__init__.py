"""The keys slice."""
