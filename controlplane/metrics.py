"""Prometheus metrics of one control-plane replica (``GET /metrics``, any API token).

Counted as they happen, read at scrape time:

- ``edgefleet_reports_{received,applied,dropped}_total{kind}`` and
  ``edgefleet_reports_rejected_total{kind,reason}``: device reports by kind (the topic's
  last part: heartbeat, state, events, ...); rejected for being malformed, unauthenticated,
  replayed, dated in the future, refused (``rejected``) or failing (``errors``); dropped
  unread because the ingest queue was full;
- ``edgefleet_ingest_queue_reports`` and ``edgefleet_ingest_queue_bytes``;
- ``edgefleet_mqtt_connected`` (1/0) and ``edgefleet_report_acks_sent_total``;
- ``edgefleet_http_request_duration_seconds{method,route,status}``: API latency by route
  template (``/api/v1/devices/{device_id}``; ``unmatched`` for paths no route took;
  methods other than the usual seven are ``OTHER``);
- ``edgefleet_db_pool_connections{state}`` (checked_out, idle, overflow) and
  ``edgefleet_db_pool_size``.

Read from the database at each scrape (one ``GROUP BY`` each, no row loaded):
``edgefleet_devices{fleet,status}``, ``edgefleet_devices_online{fleet}``,
``edgefleet_rollouts{state}`` and ``edgefleet_rollout_driver`` (1 on the replica that
holds the rollout lease). If the database does not answer, ``edgefleet_database_up`` is
0 and those are left out; the scrape still succeeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import fields
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controlplane import leases
from controlplane.deps import Services
from controlplane.ingest_batch import IngestStats
from controlplane.models import Device, Rollout, utcnow
from controlplane.rollouts.driver import LEASE

logger = logging.getLogger(__name__)

#: the ``IngestStats`` counters that are a reason for a rejection
REASONS = tuple(f.name for f in fields(IngestStats) if f.name not in ("received", "applied"))
#: seconds; API calls run from ~1 ms (a cached read) to seconds (a big upload)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UNMATCHED = "unmatched"
#: the ``method`` label: these, else ``OTHER`` (a client may send any method name, and
#: each would be a new series)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "OTHER"


class Metrics:
    """The registry of one app: its collectors and the API latency histogram."""

    def __init__(self, services: Services) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.http = Histogram(
            "edgefleet_http_request_duration_seconds",
            "API requests by method, route template and status, until the response began",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_Ingestion(services))
        self.registry.register(_Database(services))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Ingestion(Collector):
    """What the MQTT bridge counted: reports, its queue, its connection, its acks."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterator[Metric]:
        bridge = self._services.bridge
        received = CounterMetricFamily(
            "edgefleet_reports_received", "Device reports received, by kind", labels=["kind"]
        )
        applied = CounterMetricFamily(
            "edgefleet_reports_applied", "Device reports applied, by kind", labels=["kind"]
        )
        rejected = CounterMetricFamily(
            "edgefleet_reports_rejected",
            "Device reports not applied, by kind and reason",
            labels=["kind", "reason"],
        )
        dropped = CounterMetricFamily(
            "edgefleet_reports_dropped",
            "Device reports dropped unread (the ingest queue was full), by kind",
            labels=["kind"],
        )
        connected = GaugeMetricFamily(
            "edgefleet_mqtt_connected", "1 while the MQTT bridge is connected to the broker"
        )
        depth = GaugeMetricFamily("edgefleet_ingest_queue_reports", "Reports waiting to apply")
        size = GaugeMetricFamily("edgefleet_ingest_queue_bytes", "Bytes of reports waiting")
        acks = CounterMetricFamily("edgefleet_report_acks_sent", "Report acks sent to devices")
        if bridge is not None:
            for kind, stats in sorted(bridge.ingester.kinds.kinds.items()):
                received.add_metric([kind], stats.received)
                applied.add_metric([kind], stats.applied)
                for reason in REASONS:
                    rejected.add_metric([kind, reason], getattr(stats, reason))
            for kind, count in sorted(bridge.dropped_kinds.items()):
                dropped.add_metric([kind], count)
            queued, queued_bytes = bridge.queued
            depth.add_metric([], queued)
            size.add_metric([], queued_bytes)
            acks.add_metric([], bridge.acks.acks_sent)
        connected.add_metric([], 1 if bridge is not None and bridge.connected else 0)
        yield from (received, applied, rejected, dropped, depth, size, connected, acks)


class _Database(Collector):
    """The pool, and what the database holds: devices, rollouts, the rollout lease."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterator[Metric]:
        yield from self._pool()
        up = GaugeMetricFamily("edgefleet_database_up", "1 if the database answered this scrape")
        try:
            found = list(self._counts())
        except SQLAlchemyError as exc:
            logger.warning("metrics: the database did not answer: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from found

    def _pool(self) -> Iterator[Metric]:
        pool: Any = self._services.engine.pool
        if not all(hasattr(pool, name) for name in ("size", "checkedout", "checkedin", "overflow")):
            return  # a pool without these figures (SQLite's in-memory one)
        size = GaugeMetricFamily("edgefleet_db_pool_size", "Connections the pool keeps open")
        size.add_metric([], pool.size())
        connections = GaugeMetricFamily(
            "edgefleet_db_pool_connections", "Database connections by state", labels=["state"]
        )
        connections.add_metric(["checked_out"], pool.checkedout())
        connections.add_metric(["idle"], pool.checkedin())
        connections.add_metric(["overflow"], max(pool.overflow(), 0))
        yield from (size, connections)

    def _counts(self) -> Iterator[Metric]:
        devices = GaugeMetricFamily(
            "edgefleet_devices", "Devices by fleet and status", labels=["fleet", "status"]
        )
        online = GaugeMetricFamily(
            "edgefleet_devices_online", "Devices online, by fleet", labels=["fleet"]
        )
        rollouts = GaugeMetricFamily("edgefleet_rollouts", "Rollouts by state", labels=["state"])
        driver = GaugeMetricFamily(
            "edgefleet_rollout_driver", "1 on the replica that drives the rollouts now"
        )
        with Session(self._services.engine) as session:
            by_status = session.execute(
                select(col(Device.fleet), col(Device.status), func.count())
                .group_by(col(Device.fleet), col(Device.status))
            ).all()  # fmt: skip
            by_online = session.execute(
                select(col(Device.fleet), func.count())
                .where(col(Device.online).is_(True))
                .group_by(col(Device.fleet))
            ).all()  # fmt: skip
            by_state = session.execute(
                select(col(Rollout.state), func.count()).group_by(col(Rollout.state))
            ).all()
        for fleet, status, count in by_status:
            devices.add_metric([fleet, status], count)
        for fleet, count in by_online:
            online.add_metric([fleet], count)
        for state, count in by_state:
            rollouts.add_metric([state], count)
        lease = leases.current(self._services.engine, LEASE)
        me = self._services.settings.mqtt_client_id
        holds = lease is not None and lease.holder == me and lease.expires_at > utcnow()
        driver.add_metric([], 1 if holds else 0)
        yield from (devices, online, rollouts, driver)


def route_template(scope: Scope) -> str:
    """The template of the route that took the request (``/api/v1/devices/{device_id}``),
    or ``UNMATCHED``. FastAPI's route knows its path below the routers it was included
    in only, so the prefix is what the request path holds before the route's part."""
    path_format = getattr(scope.get("route"), "path_format", None)
    if not isinstance(path_format, str):
        return UNMATCHED
    path: str = scope.get("path", "")
    params = scope.get("path_params") or {}
    try:
        rendered = path_format.format(**{k: str(v) for k, v in params.items()})
    except (KeyError, IndexError, ValueError):
        return path_format
    if rendered and path.endswith(rendered):
        return path[: len(path) - len(rendered)] + path_format
    return path_format


class LatencyMiddleware:
    """Times every HTTP request into ``Metrics.http`` (until the response began), labelled
    with the route template the router matched."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        start = time.perf_counter()
        started = False

        def observe(status: int) -> None:
            template = route_template(scope)
            method = scope["method"] if scope["method"] in METHODS else OTHER
            self._metrics.http.labels(method, template, str(status)).observe(
                time.perf_counter() - start
            )

        async def timed_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and not started:
                started = True
                observe(int(message["status"]))
            await send(message)

        try:
            await self._app(scope, receive, timed_send)
        except Exception:
            if not started:  # no response began: what the client gets is a 500
                observe(500)
            raise
