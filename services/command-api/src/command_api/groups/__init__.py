"""Groups: create, participants, leave, invite links, sync (list with metadata)."""
