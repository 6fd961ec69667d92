"""Calls: the session setting that rejects incoming calls, with an optional auto-reply."""
