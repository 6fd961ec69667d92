"""zapstream's one typed contract: the commands and events on its topics, shared by producers and consumers.

Modules: :mod:`.payloads` (session event payloads), :mod:`.campaign_payloads`, :mod:`.commands`,
:mod:`.campaign_commands`, :mod:`.identity_events`, :mod:`.events` (every event type with its version and
upcasters), :mod:`.envelope` / :mod:`.campaign_envelope` (records and their CloudEvents headers), :mod:`.secrets` (QR and
pairing codes: the short-retention topic that carries them instead of the event log), :mod:`.websocket` (what the
WebSocket gateway adds to payloads on their way to a socket).
Pure: pydantic models and functions, no I/O.
"""
