"""What the WebSocket gateway adds to the contract's payloads on the way to a socket (never on Kafka).

Seed 003's clients put the QR straight into ``<img src>``, so the gateway sends it as a PNG data URL as
well (``qrImage``, made at send time and never stored), in ``session.qr.updated`` and in the snapshot's
session; the snapshot's session is the read model's, so it also has its ``name``. Readers of the
gateway's frames (seed 003's Socket.IO bridge) read them with these models.
"""

from __future__ import annotations

from .payloads import EventPayload, QrUpdated, SessionView


class QrShown(QrUpdated):
    """``session.qr.updated`` as a socket receives it."""

    qr_image: str | None = None


class SnapshotSession(SessionView):
    """The session in the ``session.snapshot`` a socket receives first."""

    name: str | None = None
    qr_image: str | None = None


class SnapshotShown(EventPayload):
    """``session.snapshot`` as a socket receives it."""

    session: SnapshotSession | None
