"""One in-memory span exporter for the whole test process, on the global tracer provider.

The services take their tracers from the global provider (``telemetry.tracer``), the way OpenTelemetry
is meant to be used; and the global provider can be set once per process. So every test that looks at
spans shares this exporter: it installs it on first use and clears it for each test.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from zapstream_platform import telemetry

_EXPORTER: InMemorySpanExporter | None = None


def global_exporter() -> InMemorySpanExporter:
    """The process's exporter, installed on the global provider the first time (and cleared)."""
    global _EXPORTER
    if _EXPORTER is None:
        exporter = InMemorySpanExporter()
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):  # someone installed one already: listen to it too
            current.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            telemetry.setup_tracing("tests", telemetry.TelemetrySettings(), exporter=exporter)
        _EXPORTER = exporter
    _EXPORTER.clear()
    return _EXPORTER


def provider() -> TracerProvider:
    current = trace.get_tracer_provider()
    assert isinstance(current, TracerProvider)
    return current


def trace_of(spans: Iterable[ReadableSpan], trace_id: int) -> list[ReadableSpan]:
    return [s for s in spans if s.context is not None and s.context.trace_id == trace_id]


def path_to_root(spans: Sequence[ReadableSpan], leaf: ReadableSpan) -> list[ReadableSpan]:
    """``leaf`` and its ancestors, root last; fails if a parent is missing (a broken trace)."""
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    out = [leaf]
    while out[-1].parent is not None:
        parent = by_id.get(out[-1].parent.span_id)
        assert parent is not None, f"span {out[-1].name!r} has a parent that was never exported"
        out.append(parent)
    return out


def names(path: Iterable[ReadableSpan]) -> list[str]:
    return [s.name for s in path]


def is_subsequence(wanted: Sequence[str], seen: Sequence[str]) -> bool:
    """``wanted`` in ``seen`` in the same order (other spans may sit between)."""
    it = iter(seen)
    return all(any(w == s for s in it) for w in wanted)


__all__ = ["global_exporter", "is_subsequence", "names", "path_to_root", "provider", "trace_of"]
