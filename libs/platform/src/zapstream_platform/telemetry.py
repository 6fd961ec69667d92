"""OpenTelemetry tracing: off by default, exported over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

Each service's ``Settings`` mixes in :class:`TelemetrySettings`, so the standard variable names are read
by that one Settings class (nothing here reads the environment). The composition root calls
:func:`setup_tracing` once; without an endpoint it installs nothing and every span is a free no-op.

Through Kafka the trace travels in the W3C ``traceparent`` record header: a producer calls
:func:`inject` on the headers it sends (or :func:`current_traceparent` for the envelope field), and a
consumer wraps its handling of a record in :func:`consume_span`, which continues the producer's trace.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import AliasChoices, BaseModel, Field

Headers = Sequence[tuple[str, bytes]]
_PROPAGATOR = TraceContextTextMapPropagator()


class TelemetrySettings(BaseModel):
    """Mixed into a service's ``Settings``: ``class Settings(TelemetrySettings, BaseSettings)``.

    The aliases are OpenTelemetry's own variable names, read without the service's prefix.
    """

    otlp_endpoint: str | None = Field(
        default=None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "otlp_endpoint"))
    otel_service_name: str | None = Field(
        default=None, validation_alias=AliasChoices("OTEL_SERVICE_NAME", "otel_service_name"))
    # Fraction of new traces kept (a child always follows its parent's decision).
    trace_sample_ratio: float = Field(
        default=1.0, ge=0, le=1, validation_alias=AliasChoices("OTEL_TRACES_SAMPLER_ARG", "trace_sample_ratio"))


def setup_tracing(service: str, settings: TelemetrySettings, exporter: SpanExporter | None = None,
                  install_global: bool = True) -> TracerProvider | None:
    """Build a tracer provider if an OTLP endpoint is configured or an ``exporter`` is given (tests pass
    an ``InMemorySpanExporter``) and, unless ``install_global`` is False, make it the process's provider.
    Returns it (call ``shutdown()`` on exit to flush), or None when tracing is off.
    """
    if exporter is None and not settings.otlp_endpoint:
        return None
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.otel_service_name or service}),
        sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)),
    )
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        # Imported here: the exporter pulls in protobuf, which a service with tracing off never needs.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = str(settings.otlp_endpoint).rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    if install_global:
        trace.set_tracer_provider(provider)
    return provider


def tracer(name: str) -> Tracer:
    return trace.get_tracer(name)


def enabled() -> bool:
    """Whether a real tracer provider is installed. Hot paths (a span per command or pushed record) ask
    first: even a no-op span costs parsing and formatting the ``traceparent`` and a context switch, some
    15 µs, which tracing-off deployments should not pay."""
    return not isinstance(trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def context_from_headers(headers: Headers | None) -> Context:
    """The trace context carried by a Kafka record's ``traceparent`` header (empty if none)."""
    carrier = {k: v.decode(errors="replace") for k, v in (headers or ()) if k in ("traceparent", "tracestate")}
    return _PROPAGATOR.extract(carrier)


def context_from_traceparent(traceparent: str | None) -> Context:
    return _PROPAGATOR.extract({"traceparent": traceparent} if traceparent else {})


def current_traceparent() -> str | None:
    """The current span as a ``traceparent`` value (for envelopes and commands), or None outside a trace."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def inject(headers: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Set ``traceparent`` (and ``tracestate``) on outgoing Kafka headers from the current span.

    An existing ``traceparent`` is replaced only when a span is current, so a service with tracing off
    still forwards what it received.
    """
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    if not carrier:
        return headers
    kept = [(k, v) for k, v in headers if k not in carrier]
    return kept + [(k, v.encode()) for k, v in carrier.items()]


@contextmanager
def consume_span(tracer_: Tracer, name: str, headers: Headers | None = None, traceparent: str | None = None,
                 attributes: Mapping[str, Any] | None = None) -> Iterator[Span]:
    """A CONSUMER span continuing the trace of a consumed record (from its headers or a traceparent)."""
    ctx = context_from_headers(headers) if headers is not None else context_from_traceparent(traceparent)
    with tracer_.start_as_current_span(name, context=ctx, kind=SpanKind.CONSUMER,
                                       attributes=dict(attributes or {})) as span:
        yield span


@contextmanager
def produce_span(tracer_: Tracer, name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Span]:
    """A PRODUCER span around a send; :func:`inject` inside it puts this span in the record's headers."""
    with tracer_.start_as_current_span(name, kind=SpanKind.PRODUCER, attributes=dict(attributes or {})) as span:
        yield span
