"""Request-body guard in front of the routes: a size limit per path, and no escaped NUL in JSON.

The limit is enforced before the body is read whole (Content-Length, then counted while it
streams), so a huge body costs nothing. PostgreSQL text cannot hold NUL: a JSON ``\\u0000`` is a
422 here rather than a failure later.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from command_api.shared.problems import problem_response

NUL = b"\\u0000"


class BodyLimit:
    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int | None]) -> None:
        self.app = app
        self.limit_for = limit_for  # path → byte limit; None: the route streams and checks its body itself

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self.limit_for(path)
        if limit is None:
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await problem_response(413, f"body exceeds {limit} bytes", path, limit=limit)(scope, receive, send)
                return
        # Read it all here (bounded), then hand it on: JSON bodies are parsed whole anyway.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await problem_response(413, f"body exceeds {limit} bytes", path, limit=limit)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if NUL in body:
            await problem_response(422, "NUL characters are not allowed", path)(scope, receive, send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
