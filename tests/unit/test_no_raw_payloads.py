"""Services read event payloads through the contract's models (``env.data(p.MessagesEdit).edits``), never as dicts.

Issue 17: "no ``payload["..."]`` outside the contract". A grep would miss the usual alias
(``pl = env.payload`` then ``pl["edits"]``), so this walks each module's syntax tree: it flags indexing,
``.get(...)`` and other dict methods, and ``in`` tests on anything named ``payload`` (``env.payload``,
``payload``), on names bound from it (``pl = env.payload``, ``sid, pl = env.session_id, env.payload``), and
``x["payload"]``. Passing ``env.payload`` on whole (to a model, or to the wire) is fine.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

GUARDED = [
    "services/projector/src",
    "services/ws-gateway/src",
    "services/session-runner/src",
    "services/campaign-runner/src",
    "services/webhooks/src",
    "services/analytics/src",
    "services/command-api/src",
]
"""Source trees that must hold no raw payload access: every consumer reads payloads through the contract."""

DICT_METHODS = frozenset({"get", "items", "keys", "values", "pop", "setdefault", "update", "copy", "__getitem__"})


def _is_payload(node: ast.expr, aliases: set[str]) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr == "payload"
    if isinstance(node, ast.Name):
        return node.id == "payload" or node.id in aliases
    return False


def _aliases(tree: ast.AST) -> set[str]:
    """Names assigned from ``….payload`` anywhere in the module (scopes are not told apart: stricter, not laxer)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.NamedExpr):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = node.value
            if value is None:
                continue
            for target in targets:
                pairs: list[tuple[ast.expr, ast.expr]]
                if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(
                        value.elts):
                    pairs = list(zip(target.elts, value.elts, strict=True))
                else:
                    pairs = [(target, value)]
                for t, v in pairs:
                    if isinstance(t, ast.Name) and isinstance(v, ast.Attribute) and v.attr == "payload":
                        names.add(t.id)
    return names


def raw_accesses(source: str) -> list[tuple[int, str]]:
    """(line, code) of every raw payload access in ``source``."""
    tree = ast.parse(source)
    aliases = _aliases(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        hit: ast.AST | None = None
        if isinstance(node, ast.Subscript):
            key = node.slice
            if _is_payload(node.value, aliases) or (isinstance(key, ast.Constant) and key.value == "payload"):
                hit = node
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in DICT_METHODS and _is_payload(node.func.value, aliases):
                hit = node
        elif isinstance(node, ast.Compare):
            if any(isinstance(op, ast.In | ast.NotIn) for op in node.ops) and any(
                    _is_payload(c, aliases) for c in node.comparators):
                hit = node
        if hit is not None:
            found.append((getattr(hit, "lineno", 0), ast.unparse(hit)))
    return found


def test_the_guard_sees_direct_access_aliases_and_payload_keys() -> None:
    source = '''
def f(env, record):
    a = env.payload["edits"]
    b = env.payload.get("upsertType")
    sid, pl = env.session_id, env.payload
    c = pl["messages"]
    d = "rich" in env.payload
    e = record["payload"]
    ok = env.data(Model).edits, Model.model_validate(env.payload), env.payload
'''
    assert [line for line, _ in raw_accesses(source)] == [3, 4, 6, 7, 8]


@pytest.mark.parametrize("tree", GUARDED)
def test_no_raw_payload_access(tree: str) -> None:
    root = REPO / tree
    assert root.is_dir(), root
    offences = [f"{path.relative_to(REPO)}:{line}: {code}"
                for path in sorted(root.rglob("*.py")) for line, code in raw_accesses(path.read_text())]
    assert not offences, "read payloads through the contract models (env.data(Model)):\n" + "\n".join(offences)
