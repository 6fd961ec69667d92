"""Structured JSON logs on stderr, with secrets redacted before they are written."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import orjson
from opentelemetry import trace

_SECRET_KEYS = re.compile(r"(pass(word)?|secret|token|api[_-]?key|authorization|dsn|cookie)", re.I)
_INLINE = re.compile(r"(?i)(accessToken=|Bearer\s+|zs_(?:live|test)_)[A-Za-z0-9._\-]+|(://[^:/\s]+:)[^@\s]+@")


def redact(text: str) -> str:
    """Mask tokens, bearer credentials and passwords inside URLs."""
    return _INLINE.sub(lambda m: (m.group(1) or m.group(2) or "") + "***" + ("@" if m.group(2) else ""), text)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        # The current trace, when tracing is on: logs and traces of one request join on trace_id.
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            for key, value in extra.items():
                entry[key] = "***" if _SECRET_KEYS.search(key) else value
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


def configure(service: str, level: str = "INFO") -> None:
    """Called once by each service's composition root."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel("WARNING")
