"""Seed 004's features as slices: campaigns, address book, suppressions and dashboards (see :mod:`.mount`)."""
