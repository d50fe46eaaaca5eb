"""A real S3 protocol server for tests: moto's standalone server, over HTTP on loopback.

``run_s3(workdir)`` starts ``python -m moto.server`` on a free port (its request log in
``workdir/s3.log``), creates a bucket, and yields an ``S3Server``: its endpoint, the
bucket, the environment a control plane needs to keep its blobs there
(``controlplane_env(prefix)``), a boto3 client, its request log (``requests()``) and
``gets(key_part)``: the object GETs in it whose path holds ``key_part``. The credentials are moto's
dummies, passed through the standard AWS variables.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx

from tests.support.ports import free_port
from tests.support.processes import stop

#: moto accepts any credentials; these only have to be present and look like AWS's.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAEDGEFLEETTEST000",
    "AWS_SECRET_ACCESS_KEY": "edgefleet-tests-secret-key-not-a-real-one",
    "AWS_REGION": "eu-west-1",
}


@dataclass
class S3Server:
    endpoint: str
    bucket: str
    log: Path
    process: subprocess.Popen[bytes]

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=CREDENTIALS["AWS_REGION"],
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def url(self, prefix: str = "") -> str:
        return f"s3://{self.bucket}/{prefix}"

    def controlplane_env(self, prefix: str = "blobs") -> dict[str, str]:
        return {
            **CREDENTIALS,
            "EDGEFLEET_BLOB_STORE": self.url(prefix),
            "EDGEFLEET_S3_ENDPOINT_URL": self.endpoint,
        }

    def requests(self) -> str:
        """The server's request log (colour codes taken out)."""
        return re.sub(r"\x1b\[[0-9;]*m", "", self.log.read_text(errors="replace"))

    def gets(self, key_part: str) -> int:
        """Successful GETs (200/206) of objects whose path holds ``key_part``."""
        pattern = rf'"GET /[^ ]*{re.escape(key_part)}[^ ]* HTTP/1.1" 20[06]'
        return len(re.findall(pattern, self.requests()))


@contextmanager
def run_s3(workdir: Path, *, bucket: str = "edgefleet-blobs") -> Iterator[S3Server]:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "s3.log"
    env = {**os.environ, **CREDENTIALS}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = S3Server(f"http://127.0.0.1:{port}", bucket, log, process)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{server.endpoint}/moto-api/", timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        server.client().create_bucket(
            Bucket=bucket,
            CreateBucketConfiguration={"LocationConstraint": CREDENTIALS["AWS_REGION"]},
        )
        yield server
    finally:
        stop(process, timeout=10)
