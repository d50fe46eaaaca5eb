"""Hot swap: a request in flight finishes on the old model, which closes only afterwards;
and the OIP REST routes over a real ONNX Runtime runner, served on loopback by the agent's
own thread-per-connection HTTP/1.1 server (including non-finite values, which must never
make the body invalid JSON)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import httpx
import numpy as np
import pytest

from agent.errors import ModelNotFound
from agent.runners.base import Runner
from agent.serving import LoadedModel, ServedModels
from agent.serving.local_api import LocalApiServer, build_app
from tests.support.loaded import loaded_model
from tests.support.onnx_models import affine_model, bool_input_model, two_input_model


class _Recorder(Runner):
    """A minimal runner that records close(); the thing under test is ServedModels."""

    key: ClassVar[str] = "test-recorder"

    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def load(self, bundle_dir: Path, metadata: Any) -> None:
        pass

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {}

    def close(self) -> None:
        self.closed = True


def _model(version: str, runner: Runner) -> LoadedModel:
    return LoadedModel("m", version, "0" * 64, Path("."), runner)


def test_swap_waits_for_in_flight_requests() -> None:
    models = ServedModels()
    old, new = _Recorder(), _Recorder()
    models.activate(_model("1", old))
    with models.use("m") as in_flight:
        assert models.activate(_model("2", new)) is in_flight
        assert models.get("m").version == "2"
        assert not old.closed  # still serving the request that started on it
    assert old.closed and not new.closed
    models.remove("m")
    assert new.closed
    with pytest.raises(ModelNotFound), models.use("m"):
        pass


class _Counting(Runner):
    """Fails a request that reaches it after ``close`` (what a lost swap race would do)."""

    key: ClassVar[str] = "test-counting"

    def __init__(self) -> None:
        super().__init__()
        self.closed = False
        self.late = 0

    def load(self, bundle_dir: Path, metadata: Any) -> None:
        pass

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.closed:
            self.late += 1
            raise RuntimeError("inference on a closed runner")
        return {}

    def close(self) -> None:
        self.closed = True


class _SwapOnRead(dict[str, LoadedModel]):
    """The served map, swapping ``m`` to ``then`` right after the first read: a hot swap
    landing between a request's read of the map and its counting itself in."""

    def __init__(self, models: ServedModels, then: LoadedModel) -> None:
        super().__init__(models._models)
        self._models = models
        self._then: LoadedModel | None = then

    def get(self, key: str, default: Any = None) -> Any:
        model = super().get(key, default)
        then, self._then = self._then, None
        if then is not None:
            self._models.activate(then)
        return model


def test_a_request_that_loses_the_race_with_a_swap_takes_the_new_model() -> None:
    models = ServedModels()
    old, new = _Counting(), _Counting()
    models.activate(_model("1", old))
    models._models = _SwapOnRead(models, _model("2", new))
    models.infer("m", {})
    assert old.closed and old.late == 0  # closed at the swap: nothing held it
    assert not new.closed
    served = models.get("m")
    assert served.version == "2" and served.in_flight == 0


class _SwapOnAppend(list[None]):
    """A model's in-flight list, swapping the model out right after a request counts
    itself in: the swap lands between a request's count and its look at ``_retired``."""

    def __init__(self, models: ServedModels, then: LoadedModel) -> None:
        super().__init__()
        self._models = models
        self._then: LoadedModel | None = then

    def append(self, item: None) -> None:
        super().append(item)
        then, self._then = self._then, None
        if then is not None:
            self._models.activate(then)


@pytest.mark.parametrize("path", ["infer", "use"])
def test_a_request_counted_in_as_its_model_is_swapped_backs_out(path: str) -> None:
    models = ServedModels()
    old, new = _Counting(), _Counting()
    models.activate(first := _model("1", old))
    first._holds = _SwapOnAppend(models, _model("2", new))
    if path == "infer":
        models.infer("m", {})
    else:
        with models.use("m") as held:
            assert held.version == "2"
    assert old.closed and old.late == 0 and first.in_flight == 0  # closed by the back-out
    assert not new.closed and models.get("m").in_flight == 0


def test_requests_never_reach_a_closed_model_during_swaps() -> None:
    models = ServedModels()
    runners = [_Counting()]
    models.activate(_model("0", runners[0]))
    stop = threading.Event()
    failures: list[BaseException] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                models.infer("m", {})
            except BaseException as exc:  # reported below
                failures.append(exc)
                return

    threads = [threading.Thread(target=serve) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for version in range(1, 300):
            runners.append(runner := _Counting())
            models.activate(_model(str(version), runner))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not failures
    assert sum(r.late for r in runners) == 0
    assert all(r.closed for r in runners[:-1]) and not runners[-1].closed
    assert models.get("m").in_flight == 0


@pytest.fixture
def served() -> Iterator[tuple[ServedModels, httpx.Client]]:
    models = ServedModels()
    server = LocalApiServer(build_app(models, server_version="9.9"), "127.0.0.1", 0)
    url = server.start()
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            yield models, client
    finally:
        server.stop()


def test_oip_routes(tmp_path: Path, served: tuple[ServedModels, httpx.Client]) -> None:
    models, client = served
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 503
    models.activate(loaded_model(tmp_path, two_input_model, "two"))
    models.activate(loaded_model(tmp_path, bool_input_model, "masked"))
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2").json()["version"] == "9.9"
    assert client.get("/v2/models/two/ready").status_code == 200
    assert client.get("/v2/models/two/versions/1.2").json()["name"] == "two"
    assert client.get("/v2/models/two/versions/0.1").status_code == 404
    assert client.get("/v2/models/nope").json() == {"error": "model 'nope' is not active"}

    body = {
        "inputs": [
            {"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1.5, 2.5]},
            {"name": "mask", "shape": [1, 2], "datatype": "BOOL", "data": [False, True]},
        ]
    }
    resp = client.post("/v2/models/masked/infer", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["outputs"] == [
        {"name": "y", "shape": [1, 2], "datatype": "FP32", "data": [0.0, 2.5]}
    ]
    assert "id" not in resp.json()
    bad = client.post("/v2/models/masked/infer", content=b"{nope")
    assert bad.status_code == 400 and "not JSON" in bad.json()["error"]
    wrong = client.post(
        "/v2/models/two/infer",
        json={"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT64", "data": [1] * 4}]},
    )
    assert wrong.status_code == 400 and wrong.json()["error"].startswith("input 'x'")
    assert client.get("/v2/unknown").status_code == 404


def _strict_json(text: str) -> Any:
    """RFC 8259 only: NaN / Infinity / -Infinity literals are a parse error."""

    def refuse(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_values_keep_the_json_valid(
    tmp_path: Path, served: tuple[ServedModels, httpx.Client]
) -> None:
    models, client = served
    models.activate(loaded_model(tmp_path, affine_model, "affine"))  # y = 2x + 1, FP32

    def infer(data: list[Any]) -> httpx.Response:
        tensor = {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": data}
        return client.post("/v2/models/affine/infer", json={"inputs": [tensor]})

    # 3e38 fits FP32, 2 * 3e38 does not: the model itself produces +-infinity
    ok = infer([3e38, -3e38, "NaN", 1])
    assert ok.status_code == 200, ok.text
    assert _strict_json(ok.text)["outputs"][0]["data"] == ["Infinity", "-Infinity", "NaN", 3.0]

    too_big = infer([1e39, 0, 0, 0])  # does not fit FP32: refused, not turned into inf
    assert too_big.status_code == 400
    assert _strict_json(too_big.text) == {"error": "input 'x': value out of range for FP32"}

    literal = client.post(
        "/v2/models/affine/infer",
        content=b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[NaN,1,2,3]}]}',
    )
    assert literal.status_code == 400 and "not JSON" in _strict_json(literal.text)["error"]
