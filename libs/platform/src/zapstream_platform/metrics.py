"""Prometheus metrics for every service (prometheus-client), on a registry each composition root owns.

``Metrics(service)`` defines every series once, on its own ``CollectorRegistry`` (nothing is registered
at import, and tests can build as many as they like). A service uses the series that concern it; the
rest stay at zero and cost nothing.

Label cardinality is bounded on purpose: labels are routes (templates, never raw paths), methods,
status codes, command/event types, topics, consumer groups, partitions, states and outcomes, never
tenant ids, session ids, message ids or URLs. A tenant-level view belongs in logs and traces.

Serving: the command API answers ``GET /metrics`` with :func:`exposition`; the other services call
:func:`serve` for a metrics port of their own (documented in docs/operations.md and
infra/observability/prometheus.yml).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from threading import Lock, Thread
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    make_asgi_app,
    make_wsgi_app,
)

# Seconds; from a fast in-memory answer to a slow WhatsApp round trip or webhook receiver.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)
UNMATCHED_ROUTE = "unmatched"  # 404s for arbitrary paths must not create a series each


@dataclass
class Metrics:
    service: str
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        r = self.registry
        # HTTP (command API, ws-gateway's HTTP endpoints, health ports)
        self.http_requests = Counter("zapstream_http_requests_total", "HTTP requests answered",
                                     ["route", "method", "status"], registry=r)
        self.http_latency = Histogram("zapstream_http_request_duration_seconds", "HTTP request latency",
                                      ["route", "method"], buckets=LATENCY_BUCKETS, registry=r)
        # Commands (command API)
        self.commands = Counter("zapstream_commands_total", "Commands by type and outcome (API: accepted, rejected "
                                "= not published; runner: handled, rejected by the domain)",
                                ["type", "outcome"], registry=r)
        # Kafka
        self.events_produced = Counter("zapstream_kafka_records_produced_total", "Records produced per topic",
                                       ["topic"], registry=r)
        self.events_consumed = Counter("zapstream_kafka_records_consumed_total", "Records consumed per topic",
                                       ["topic", "group"], registry=r)
        self.consumer_lag = Gauge("zapstream_kafka_consumer_lag", "Records behind the partition's last stable "
                                  "offset", ["group", "topic", "partition"], registry=r)
        self.txn_commit = Histogram("zapstream_kafka_transaction_commit_seconds", "Kafka transaction commit "
                                    "latency", buckets=LATENCY_BUCKETS, registry=r)
        # Projector
        self.projector_batch = Histogram("zapstream_projector_batch_size", "Events applied per PostgreSQL "
                                         "transaction", ["projection"], buckets=BATCH_BUCKETS, registry=r)
        self.projector_commit = Histogram("zapstream_projector_commit_seconds", "PostgreSQL commit latency of "
                                          "a projected batch (rows and offsets)", ["projection"],
                                          buckets=LATENCY_BUCKETS, registry=r)
        self.projector_lag = Histogram("zapstream_projector_event_age_seconds", "Time from an event's "
                                       "occurrence to its projection", ["projection"], buckets=LATENCY_BUCKETS,
                                       registry=r)
        # WebSocket gateway
        self.ws_connections = Gauge("zapstream_ws_connections", "Open WebSocket connections",
                                    ["tenant_class"], registry=r)
        # Session runner
        self.runner_sessions = Gauge("zapstream_runner_sessions", "Sessions owned by this runner, by state",
                                     ["state"], registry=r)
        self.runner_send = Histogram("zapstream_runner_send_seconds", "Driver send latency",
                                     ["kind"], buckets=LATENCY_BUCKETS, registry=r)
        self.runner_reconnects = Counter("zapstream_runner_driver_reconnects_total", "Driver reconnects",
                                         registry=r)
        # Webhooks
        self.webhook_deliveries = Counter("zapstream_webhook_deliveries_total", "Webhook delivery attempts by "
                                          "outcome (delivered, failed, dead, skipped)", ["outcome"], registry=r)
        self.webhook_latency = Histogram("zapstream_webhook_delivery_seconds", "Webhook receiver answer "
                                         "latency", buckets=LATENCY_BUCKETS, registry=r)
        self.webhook_pending = Gauge("zapstream_webhook_pending_deliveries", "Deliveries waiting to be sent "
                                     "(due or backing off)", registry=r)
        self.webhook_enqueued = Counter("zapstream_webhook_enqueued_total", "Deliveries enqueued from events",
                                        registry=r)
        # Campaigns
        self.campaign_sends = Counter("zapstream_campaign_sends_total", "Campaign sends by outcome",
                                      ["outcome"], registry=r)


def asgi_app(metrics: Metrics) -> Any:
    """An ASGI app answering the exposition format (``app.mount("/metrics", ...)`` answers ``/metrics/``)."""
    return make_asgi_app(registry=metrics.registry)


def exposition(metrics: Metrics) -> tuple[bytes, str]:
    """(body, content type) of a scrape, for a plain ``GET /metrics`` route (no redirect to ``/metrics/``)."""
    return generate_latest(metrics.registry), CONTENT_TYPE_LATEST


class Health:
    """Liveness and readiness for a service's ops port, set from its event loop, read by the server thread.

    ``/healthz`` answers 200 while the process serves at all. ``/readyz`` answers 200 once every check
    named in ``required`` has been reported ok (e.g. ``kafka``, ``postgres``, ``assigned``), else 503
    with the failing checks.
    """

    def __init__(self, required: Iterable[str]) -> None:
        self._checks = dict.fromkeys(required, False)
        self._lock = Lock()

    def report(self, check: str, ok: bool) -> None:
        with self._lock:
            self._checks[check] = ok

    def ready(self) -> tuple[bool, dict[str, bool]]:
        with self._lock:
            checks = dict(self._checks)
        return bool(checks) and all(checks.values()), checks


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None  # scrapes every few seconds would flood the log


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def ops_app(metrics: Metrics, health: Health | None = None) -> Callable[..., Iterable[bytes]]:
    """A WSGI app: ``/healthz``, ``/readyz`` (when ``health`` is given), and the metrics on any other path."""
    metrics_app = make_wsgi_app(metrics.registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if health is not None and path == "/healthz":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"status":"ok"}']
        if health is not None and path == "/readyz":
            ok, checks = health.ready()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
            return [orjson.dumps({"status": "ready" if ok else "not ready", "checks": checks})]
        result: Iterable[bytes] = metrics_app(environ, start_response)
        return result

    return app


def serve(metrics: Metrics, port: int, host: str = "127.0.0.1", health: Health | None = None,
          ) -> tuple[WSGIServer, Thread]:
    """Serve ``/metrics`` (and ``/healthz`` + ``/readyz`` with ``health``) on ``host:port`` from a daemon
    thread; ``server.shutdown()`` stops it."""
    server = make_server(host, port, ops_app(metrics, health), _ThreadingServer, handler_class=_QuietHandler)
    thread = Thread(target=server.serve_forever, name="ops-http", daemon=True)
    thread.start()
    return server, thread


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class HttpMetricsMiddleware:
    """ASGI middleware: requests by route template and status, and their latency.

    The route label is the matched route's template (``/sessions/{session_id}``), never the raw path.
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], metrics: Metrics,
                 skip: Iterable[str] = ("/metrics",)) -> None:
        self.app = app
        self.metrics = metrics
        self.skip = frozenset(skip)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.skip:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED_ROUTE
            method = str(scope.get("method", "GET"))
            self.metrics.http_requests.labels(template, method, str(status)).inc()
            self.metrics.http_latency.labels(template, method).observe(time.perf_counter() - start)


async def record_consumer_lag(metrics: Metrics, consumer: Any, group: str) -> None:
    """Set the lag gauge for every partition assigned to ``consumer`` (an ``AIOKafkaConsumer``).

    Lag is the last stable offset (what a read-committed consumer can reach) minus the position; call it
    now and then from the consume loop (it only reads the consumer's cached fetch metadata and position).
    """
    for tp in consumer.assignment():
        end = consumer.last_stable_offset(tp)
        if end is None:
            end = consumer.highwater(tp)
        if end is None:
            continue
        position = await consumer.position(tp)
        metrics.consumer_lag.labels(group, tp.topic, str(tp.partition)).set(max(0, end - position))
