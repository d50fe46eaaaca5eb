"""``edgectl fleets list|show`` against the real control plane app (over HTTP, SQLite
then PostgreSQL), the global options after the subcommand, and the installed edgectl
quiet when its stdout's reader is gone after asking the control plane."""

from __future__ import annotations

import json

import pytest

from edgectl.cli import main
from edgectl.pipes import EXIT_CLOSED_PIPE
from tests.support.closed_pipe import run_into_head, run_with_closed_stdout
from tests.support.controlplane import ADMIN_TOKEN
from tests.support.rollout_plane import Plane

OV = "openvino:CPU:f32"


@pytest.fixture
def fleets(plane: Plane) -> Plane:
    """Fleet store with d1 and d2, fleet lab with d3 and a pin for model det."""
    for device_id, fleet in (("d1", "store"), ("d2", "store"), ("d3", "lab")):
        plane.report(device_id, fleet=fleet)
    response = plane.http.put("/api/v1/fleets/lab/pin", json={"backend": OV, "model": "det"})
    assert response.status_code == 200, response.text
    return plane


def _flags(plane: Plane) -> list[str]:
    return ["--url", str(plane.http.base_url), "--token", ADMIN_TOKEN]


def test_fleets_list_and_show(fleets: Plane, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*_flags(fleets), "fleets", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["FLEET", "DEVICES", "PIN", "MODEL", "PINS", "CREATED"]
    rows = {line.split()[0]: line.split()[1:4] for line in lines[1:]}
    assert rows["store"] == ["2", "-", "-"]
    assert rows["lab"] == ["1", "-", f"det={OV}"]

    assert main(["fleets", "show", "lab", *_flags(fleets)]) == 0  # options after it
    shown = capsys.readouterr().out.splitlines()
    assert shown[:4] == [
        "fleet:      lab",
        "devices:    1 device",
        "pin:        -",
        f"model pins: det={OV}",
    ]
    assert shown[-1] == "its devices: edgectl devices list --fleet lab"
    assert (
        main(
            ["--url", str(fleets.http.base_url), "fleets", "show", "store", "--token", ADMIN_TOKEN]
        )
        == 0
    )
    assert "devices:    2 devices" in capsys.readouterr().out


def test_fleets_json_is_the_api_objects(fleets: Plane, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fleets", "list", "--json", *_flags(fleets)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == fleets.get("/fleets")
    assert {f["name"]: f["device_count"] for f in listed} == {"store": 2, "lab": 1}
    assert main([*_flags(fleets), "fleets", "show", "lab", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == fleets.get("/fleets/lab")
    assert shown["model_pins"] == {"det": OV}


def test_an_unknown_fleet_is_one_line(fleets: Plane, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*_flags(fleets), "fleets", "show", "nosuch"]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == "" and "\n" not in err
    assert err.startswith("edgectl: error: control plane refused GET /api/v1/fleets/nosuch (404)")


def test_a_closed_pipe_after_asking_the_control_plane_is_quiet(fleets: Plane) -> None:
    started = fleets.post("/rollouts", {"model": "det", "version": "1.0.0", "fleet": "store"}, 201)
    rid = str(started["id"])
    for args in (["rollouts", "show", rid], ["fleets", "list"], ["devices", "list", "--json"]):
        done = run_with_closed_stdout(*args, *_flags(fleets))
        assert (done.code, done.stderr) == (EXIT_CLOSED_PIPE, ""), args
    done, out = run_into_head("rollouts", "show", rid, *_flags(fleets))
    assert out.startswith(f"rollout {rid}: det 1.0.0 to fleet store")
    assert done.stderr == "" and done.code in (0, EXIT_CLOSED_PIPE)
