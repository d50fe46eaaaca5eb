"""What end-to-end report authentication costs the control plane's ingestion.

    python -m bench.ingest_auth [--reports 5000] [--devices 50] [--database-url URL] [--quick]

The real ``Ingester`` on a real database (SQLite in a temporary directory unless
``--database-url``) ingests ``--reports`` heartbeats from ``--devices`` devices, each
enrolled for real (token, CSR, certificate from a device CA the trust document
certifies, and a report key encrypted to the device's key) and sealed as an agent seals
them (HMAC-SHA256 with the report key) before the clock starts (sealing is the device's
cost). In the same run, the same heartbeats unsealed go through the same
database writes (``crud.apply_heartbeat``, one transaction each): the baseline without
authentication; the two take turns in chunks of 250, so drift falls on both alike. CPU
time (``time.process_time``) of both: authentication's share of the ingest CPU is
``1 - baseline / sealed``; the floor is at most 20% (exit 1 above it, except with
``--quick``). For information, the authentication step's own CPU inside the
sealed run (``ReportAuthenticator.open``: parse, HMAC check, the replay window's
compare-and-swap, and loading the device's row, which the write needs anyway) is
printed too. The share does not depend on the rate, so it answers
"at 5,000 reports/s" directly; the rate one core reached is printed as well. Prints a
table, then one JSON line. ``--quick``: 300 reports from 10 devices.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect
from sqlmodel import Session

from bench.options import parse_args
from controlplane import crud
from controlplane.commands import CommandSigner
from controlplane.db import init_db, make_engine
from controlplane.identity.ca import DeviceCA
from controlplane.identity.enrollment import create_enrollment, enroll
from controlplane.identity.report_auth import ReportAuthenticator
from controlplane.ingest import Ingester
from controlplane.publisher import MemoryPublisher
from controlplane.trust import TrustStore
from model_store import build_trust_document, generate_private_key
from model_store.device_certs import make_csr
from model_store.report_key_wrap import unwrap_report_key
from model_store.report_seal import seal_report
from protocol import Heartbeat, ModelMetrics, TopicKind, decode, device_topic, encode

#: authentication may take at most this share of the ingest CPU
MAX_AUTH_SHARE = 0.20


class TimedAuthenticator:
    """The ingester's authenticator, with the CPU time of each ``open`` added up."""

    def __init__(self, inner: ReportAuthenticator) -> None:
        self.inner = inner
        self.cpu_s = 0.0

    def open(self, session: Session, *args: Any, **kwargs: Any) -> Any:
        # the message's transaction (pool checkout, BEGIN) is ingestion's cost either way:
        # the report is applied in it; open it before the clock, as the apply step would
        session.connection()
        start = time.process_time()
        try:
            return self.inner.open(session, *args, **kwargs)
        finally:
            self.cpu_s += time.process_time() - start


def _heartbeat(device_id: str, n: int) -> bytes:
    return encode(
        Heartbeat(
            device_id=device_id,
            cpu_percent=12.5,
            rss_bytes=200 * 2**20,
            mem_total_bytes=8 * 2**30,
            mem_available_bytes=4 * 2**30,
            mem_percent=50.0,
            load_avg=(0.5, 0.4, 0.3),
            uptime_s=float(n),
            models=[
                ModelMetrics(
                    name="det",
                    version="1.0.0",
                    backend="onnxruntime:CPUExecutionProvider:f32",
                    requests=10 * n,
                    errors=0,
                    p50_ms=1.2,
                    p95_ms=2.5,
                    p99_ms=4.0,
                )
            ],
        )
    )


#: the two pipelines take turns in chunks this large, so drift (a database growing, a
#: neighbour's load) falls on both alike
CHUNK = 250


def _store_plain(engine: Engine, plain: list[tuple[str, bytes]]) -> None:
    """Decode and store heartbeats without authentication: the baseline."""
    for device_id, body in plain:
        with Session(engine) as session:
            crud.apply_heartbeat(session, device_id=device_id, heartbeat=decode(Heartbeat, body))
            session.commit()


def run(reports: int, devices: int, database_url: str | None, workdir: Path) -> dict[str, Any]:
    engine = make_engine(database_url or f"sqlite:///{workdir / 'bench.db'}")
    if inspect(engine).get_table_names():
        raise SystemExit(
            f"ingest_auth: {engine.url.render_as_string(hide_password=True)} is not empty; "
            "give it an empty database (it writes its own trust chain and devices)"
        )
    init_db(engine)
    root, cp, ca_key = generate_private_key(), generate_private_key(), generate_private_key()
    document = build_trust_document(
        version=1,
        expires=datetime.now(UTC) + timedelta(days=1),
        roots=[root.public_key()],
        releases=[generate_private_key().public_key()],
        control_planes=[cp.public_key()],
        device_cas=[ca_key.public_key()],
        signers=[root],
    )
    trust = TrustStore.open(engine, [root.public_key()], bootstrap=document.raw())
    signer = CommandSigner(key=cp, trust=trust, ttl=timedelta(days=1))
    ca = DeviceCA(ca_key, trust, timedelta(days=1))
    keys = {}
    with Session(engine) as session:
        for i in range(devices):
            device_id = f"bench-{i:04d}"
            key = generate_private_key()
            token, _ = create_enrollment(
                session, device_id=device_id, fleet="bench", ttl=timedelta(hours=1), created_by="b"
            )
            issued = enroll(session, ca, token=token, csr_pem=make_csr(key, device_id).decode())
            # what an agent seals with: the report key it got, encrypted to its key
            keys[device_id] = unwrap_report_key(issued.wrapped_report_key, key, device_id=device_id)
    ids = sorted(keys)
    sealed = []
    for n in range(reports):
        device_id = ids[n % devices]
        seq = n // devices + 1
        body = _heartbeat(device_id, seq)
        raw = seal_report(
            keys[device_id], device_id=device_id, stream="heartbeat", seq=seq, body=body
        )
        sealed.append((device_topic(device_id, TopicKind.HEARTBEAT), raw))
    # the same heartbeats unsealed, for other devices' rows (their own replay-free copy)
    plain = [
        (ids[n % devices], _heartbeat(ids[n % devices], n // devices + 1)) for n in range(reports)
    ]
    ingester = Ingester(engine, MemoryPublisher(), signer)
    timed = TimedAuthenticator(ingester.auth)
    ingester.auth = timed  # type: ignore[assignment]
    baseline_s = cpu_s = wall_s = 0.0
    for start in range(0, reports, CHUNK):
        cpu0 = time.process_time()
        _store_plain(engine, plain[start : start + CHUNK])
        baseline_s += time.process_time() - cpu0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for topic, raw in sealed[start : start + CHUNK]:
            ingester.handle(topic, raw)
        cpu_s += time.process_time() - cpu0
        wall_s += time.perf_counter() - wall0
    engine.dispose()
    stats = ingester.stats
    if stats.applied != reports:
        raise SystemExit(f"ingest_auth: only {stats.applied} of {reports} reports applied: {stats}")
    return {
        "reports": reports,
        "devices": devices,
        "database": engine.dialect.name,
        "ingest_cpu_us_per_report": round(cpu_s / reports * 1e6, 1),
        "baseline_cpu_us_per_report": round(baseline_s / reports * 1e6, 1),
        "auth_share": round(1 - baseline_s / cpu_s, 3),
        "auth_step_cpu_us_per_report": round(timed.cpu_s / reports * 1e6, 1),
        "reports_per_s_one_core": round(reports / wall_s, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_auth", description=__doc__)
    parser.add_argument("--reports", type=int, default=5000)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--database-url", default=None)
    args = parse_args(parser, argv, reports=300, devices=10)
    with tempfile.TemporaryDirectory(prefix="ef-bench-ingest-") as tmp:
        result = run(args.reports, args.devices, args.database_url, Path(tmp))
    result |= {"max_auth_share": MAX_AUTH_SHARE, "quick": bool(args.quick)}
    met = result["auth_share"] <= MAX_AUTH_SHARE
    result["met"] = met
    print(f"{'ingest CPU per report':<28}{result['ingest_cpu_us_per_report']:>10} us")
    print(f"{'  without authentication':<28}{result['baseline_cpu_us_per_report']:>10} us")
    print(f"{'  the auth step itself':<28}{result['auth_step_cpu_us_per_report']:>10} us")
    print(f"{'authentication share':<28}{result['auth_share']:>10.1%} (floor {MAX_AUTH_SHARE:.0%})")
    print(f"{'reports/s on one core':<28}{result['reports_per_s_one_core']:>10}")
    print(json.dumps(result))
    return 0 if met or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
