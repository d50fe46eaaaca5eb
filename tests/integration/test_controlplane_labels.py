"""Device labels and selectors through the real API (and the rollouts they target).

Same in-process control plane as the rollout tests (real uvicorn, auth, driver,
ingester; MQTT in memory; ``tests.support.rollout_plane``), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import pytest

from tests.support.rollout_plane import Plane

pytestmark = pytest.mark.integration


def _label(plane: Plane, device_id: str, body: object, status: int = 200) -> dict[str, object]:
    response = plane.http.patch(f"/api/v1/devices/{device_id}/labels", json=body)
    assert response.status_code == status, response.text
    result: dict[str, object] = response.json()
    return result


def test_labels_are_set_removed_and_validated(plane: Plane) -> None:
    plane.report("d1")
    device = _label(plane, "d1", {"set": {"region": "eu", "site": "store-12"}})
    assert device["labels"] == {"region": "eu", "site": "store-12"}
    assert device["runtimes"] == [] and device["profile"] is None
    device = _label(plane, "d1", {"set": {"region": "us"}, "remove": ["site", "absent"]})
    assert device["labels"] == {"region": "us"}
    assert plane.get("/devices/d1")["labels"] == {"region": "us"}

    both = _label(plane, "d1", {"set": {"region": "eu"}, "remove": ["region"]}, 400)
    assert both == {"detail": "label 'region' is both set and removed"}
    bad = _label(plane, "d1", {"set": {"-bad": "x"}}, 422)
    assert isinstance(bad["detail"], str) and "set" in bad["detail"]
    assert _label(plane, "d1", {"set": {"k": "v" * 64}}, 422)["detail"]
    assert _label(plane, "d1", {"sett": {}}, 422)["detail"]
    assert _label(plane, "nope", {"set": {"a": "b"}}, 404) == {"detail": "unknown device 'nope'"}
    assert plane.get("/devices/d1")["labels"] == {"region": "us"}  # refused changes changed nothing


def test_devices_are_filtered_by_selector(plane: Plane) -> None:
    for device_id, labels in [
        ("a", {"region": "eu", "hw": "xeon-amx"}),
        ("b", {"region": "eu", "hw": "rpi5"}),
        ("c", {"region": "us", "hw": "xeon-amx"}),
    ]:
        plane.report(device_id)
        _label(plane, device_id, {"set": labels})

    def ids(query: str) -> list[str]:
        return [d["id"] for d in plane.get(f"/devices?{query}")]

    assert ids("selector=region=eu") == ["a", "b"]
    assert ids("selector=hw=xeon-amx,region=eu") == ["a"]
    assert ids("selector=") == ["a", "b", "c"]
    assert ids("fleet=f&selector=region=mars") == []
    response = plane.http.get("/api/v1/devices", params={"selector": "region"})
    assert response.status_code == 400
    assert response.json() == {"detail": "invalid selector term 'region': expected key=value"}


def test_a_rollout_targets_only_the_matching_devices(plane: Plane) -> None:
    ids = plane.fleet_on_v1(4)
    for device_id in ids[:2]:
        _label(plane, device_id, {"set": {"region": "eu"}})
    rollout = plane.start(selector={"region": "eu"})
    assert rollout["selector"] == {"region": "eu"}
    assert sorted(plane.statuses(rollout["id"])) == ["d00", "d01"]
    assert "matching region=eu" in rollout["history"][0]["message"]
    for device_id in ids[:2]:
        plane.healthy_v2(device_id)
    plane.tick(3)
    assert plane.rollout(rollout["id"])["state"] == "completed"
    assert [plane.desired_version(i) for i in ids] == ["2.0.0"] * 2 + ["1.0.0"] * 2
    # a later device gets the deployment its labels select: 2.0.0 in eu, 1.0.0 elsewhere
    plane.report("late")
    plane.report("late-us")
    assert plane.desired_version("late") == "1.0.0"  # no labels yet: what all devices run
    _label(plane, "late", {"set": {"region": "eu"}})
    plane.report("late")  # its next report brings the rollout's version
    assert plane.desired_version("late") == "2.0.0"
    assert plane.desired_version("late-us") == "1.0.0"
