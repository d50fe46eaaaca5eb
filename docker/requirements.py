"""The requirements of one image's role: pyproject's dependencies less what that role
never imports (``python docker/requirements.py agent|controlplane [--extra s3]``).

The agent serves inference and never runs the server side; the control plane never runs
inference. ``tests/unit/test_image_requirements.py`` checks that no module of a role
imports, at module level, a distribution its image leaves out."""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

#: distribution -> the top-level module it provides
MODULES = {
    "onnxruntime": "onnxruntime",
    "openvino": "openvino",
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "sqlmodel": "sqlmodel",
    "psycopg": "psycopg",
    "alembic": "alembic",
    "prometheus-client": "prometheus_client",
    "fastapi-offline": "fastapi_offline",
    "amqtt": "amqtt",
    "pydantic-settings": "pydantic_settings",
    "pysimdjson": "simdjson",
    "orjson": "orjson",
}
#: role -> (its packages, the distributions its image leaves out)
ROLES: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "agent": (
        ("agent", "protocol", "model_store", "hw_profiles"),
        frozenset(
            {
                "fastapi",
                "uvicorn",
                "sqlmodel",
                "psycopg",
                "alembic",
                "prometheus-client",
                "fastapi-offline",
                "amqtt",
                "pydantic-settings",
            }
        ),
    ),
    "controlplane": (
        ("controlplane", "edgectl", "protocol", "model_store"),
        frozenset({"onnxruntime", "openvino", "pysimdjson", "orjson"}),  # the local API's JSON
    ),
}

#: role -> modules of its packages that its image does not run: ``edgectl demo`` starts
#: agents and compares their outputs with ONNX Runtime (run it from the agent's side).
NOT_IN_IMAGE: dict[str, tuple[str, ...]] = {"controlplane": ("edgectl/demo.py",)}


def distribution(requirement: str) -> str:
    """``psycopg[binary]>=3.1,<4`` -> ``psycopg``."""
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return match.group(0).lower().replace("_", "-")


def requirements(role: str, extras: list[str]) -> list[str]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    left_out = ROLES[role][1]
    return [r for r in wanted if distribution(r) not in left_out]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=sorted(ROLES))
    parser.add_argument("--extra", action="append", default=[])
    args = parser.parse_args()
    print("\n".join(requirements(args.role, args.extra)))


if __name__ == "__main__":
    main()
