"""Heartbeats faster than production, from the devices of a light fleet (a helper process
of ``bench.fleet_scale``).

    python -m bench.report_flood --devices DIR --broker URL --reports N [--rate R]

Loads the identity (report key) of every device under ``DIR`` (a light fleet's data
directory; that fleet is stopped first, so nobody else speaks for them), seals ``N``
heartbeats round-robin over the devices as each agent would (its report key, sequence
numbers above any it used) and prints ``ready``; on a line from standard input it
publishes them QoS 1 on each device's heartbeat topic, paced at ``R`` a second (0: as fast
as paho goes). Sealing happens before the clock starts (it is the devices' work). Prints
one JSON line last: published, seconds, rate, cpu_s (its own CPU time publishing).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.identity.files import IdentityFiles
from model_store.report_seal import seal_report
from protocol import Heartbeat, ModelMetrics, TopicKind, device_topic, encode, parse_broker_url

#: far above any sequence number a simulated device used before
SEQ_BASE = 1 << 40


def sealed_heartbeats(devices: Path, reports: int) -> list[tuple[str, bytes]]:
    keys = {}
    for directory in sorted(p for p in devices.iterdir() if (p / "identity").is_dir()):
        identity = IdentityFiles(directory / "identity").load()
        if identity is not None and identity.report_key is not None:
            keys[directory.name] = identity.report_key
    if not keys:
        raise SystemExit(f"report_flood: no enrolled device under {devices}")
    ids = sorted(keys)
    out = []
    for n in range(reports):
        device_id = ids[n % len(ids)]
        beat = Heartbeat(
            device_id=device_id,
            cpu_percent=12.5,
            rss_bytes=120 * 2**20,
            mem_total_bytes=8 * 2**30,
            mem_available_bytes=6 * 2**30,
            mem_percent=25.0,
            load_avg=(0.3, 0.2, 0.1),
            uptime_s=float(n),
            models=[
                ModelMetrics(
                    name="det",
                    version="1.0.0",
                    backend="onnxruntime:CPUExecutionProvider:f32",
                    requests=n,
                    errors=0,
                    p50_ms=2.0,
                    p95_ms=3.5,
                )
            ],
        )
        seq = SEQ_BASE + n // len(ids) + 1
        raw = seal_report(
            keys[device_id], device_id=device_id, stream="heartbeat", seq=seq, body=encode(beat)
        )
        out.append((device_topic(device_id, TopicKind.HEARTBEAT), raw))
    return out


def flood(broker_url: str, messages: list[tuple[str, bytes]], rate: float) -> dict[str, float]:
    broker = parse_broker_url(broker_url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-report-flood")
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    start, cpu = time.perf_counter(), time.process_time()
    for n, (topic, payload) in enumerate(messages):
        if rate > 0:
            due = start + n / rate
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
        client.publish(topic, payload, qos=1)
    info = client.publish("bench/flood/end", b"", qos=1)
    info.wait_for_publish(60)
    seconds, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    client.disconnect()
    client.loop_stop()
    return {
        "published": len(messages),
        "seconds": seconds,
        "rate": len(messages) / seconds,
        "cpu_s": cpu_s,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report_flood")
    parser.add_argument("--devices", type=Path, required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--reports", type=int, required=True)
    parser.add_argument("--rate", type=float, default=0.0)
    args = parser.parse_args(argv)
    messages = sealed_heartbeats(args.devices, args.reports)
    print("ready", flush=True)
    sys.stdin.readline()
    print(json.dumps(flood(args.broker, messages, args.rate)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
