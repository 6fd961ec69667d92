"""Webhooks slice: register, filter, pause/resume, rotate secrets, inspect deliveries, re-drive, replay."""
