"""Groups in the simulator: create, participants (add/remove/promote/demote), leave, invite links, list.

Metadata is answered in the runner's wire shape (``GroupInfo``: ``id``, ``subject``, ``owner``,
``creation``, ``size``, ``participants`` with ``admin``), as WhatsApp's group queries return it.
Only admins change participants or reset the link, as on WhatsApp.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from wa_simulator.core import JID_SUFFIX, SimError, jid_to_phone, normalize_phone, phone_to_jid

GROUP_SUFFIX = "@g.us"
ACTIONS = ("add", "remove", "promote", "demote")


@dataclass
class Group:
    jid: str
    subject: str
    owner: str
    creation: int
    members: dict[str, str | None] = field(default_factory=dict)  # phone -> None | "admin" | "superadmin"
    invite: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    def as_info(self) -> dict[str, Any]:
        return {"id": self.jid, "subject": self.subject, "owner": phone_to_jid(self.owner), "creation": self.creation,
                "desc": None, "announce": False, "restrict": False, "size": len(self.members),
                "participants": [{"id": phone_to_jid(p), "admin": role} for p, role in sorted(self.members.items())]}


class Groups:
    def __init__(self) -> None:
        self.groups: dict[str, Group] = {}

    def _phones(self, raw: object) -> list[str]:
        if not isinstance(raw, list) or not raw or not all(isinstance(x, str) for x in raw):
            raise SimError("participants must be a non-empty list of JIDs")
        return [jid_to_phone(x) if x.endswith(JID_SUFFIX) else normalize_phone(x) for x in raw]

    def _group(self, jid: object, me: str) -> Group:
        group = self.groups.get(jid) if isinstance(jid, str) else None
        if group is None or me not in group.members:
            raise SimError(f"not a member of group {jid!r}")
        return group

    def create(self, me: str, subject: object, participants: object, now: int) -> dict[str, Any]:
        if not isinstance(subject, str) or not subject or len(subject) > 100:
            raise SimError("subject must be 1 to 100 characters")
        phones = self._phones(participants)
        jid = f"120363{secrets.randbelow(10**12):012d}{GROUP_SUFFIX}"
        group = Group(jid, subject, me, now, {me: "superadmin"})
        for phone in phones:
            group.members.setdefault(phone, None)
        self.groups[jid] = group
        return group.as_info()

    def participants(self, me: str, jid: object, action: object, participants: object) -> list[str]:
        group = self._group(jid, me)
        if action not in ACTIONS:
            raise SimError(f"action must be one of {', '.join(ACTIONS)}")
        if group.members.get(me) is None:
            raise SimError("only admins change participants")
        changed = []
        for phone in self._phones(participants):
            present = phone in group.members
            if action == "add" and not present:
                group.members[phone] = None
            elif action == "remove" and present and phone != group.owner:
                del group.members[phone]
            elif action == "promote" and present and group.members[phone] is None:
                group.members[phone] = "admin"
            elif action == "demote" and present and group.members[phone] == "admin":
                group.members[phone] = None
            else:
                continue
            changed.append(phone_to_jid(phone))
        return changed

    def leave(self, me: str, jid: object) -> None:
        group = self._group(jid, me)
        del group.members[me]
        if group.members and not any(group.members.values()):
            group.members[next(iter(sorted(group.members)))] = "admin"  # WhatsApp promotes someone

    def invite_link(self, me: str, jid: object, reset: object) -> str:
        group = self._group(jid, me)
        if reset:
            if group.members.get(me) is None:
                raise SimError("only admins reset the invite link")
            group.invite = secrets.token_urlsafe(16)
        return f"https://chat.whatsapp.com/{group.invite}"

    def of(self, me: str) -> list[dict[str, Any]]:
        return [g.as_info() for g in self.groups.values() if me in g.members]
