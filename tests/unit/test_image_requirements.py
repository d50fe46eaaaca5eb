"""The images install only what their role needs (``docker/requirements.py``): no module
of a role imports, when it is loaded, a distribution its image leaves out. (Imports
inside a function are allowed: e.g. model_store reads an OpenVINO IR only where
OpenVINO is installed, and says so in one line otherwise.)"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _requirements_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "image_requirements", ROOT / "docker" / "requirements.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REQ = _requirements_module()


def _load_time_imports(tree: ast.Module) -> set[str]:
    """Top-level names imported by statements that run when the module loads: module
    level, under ``if``/``try``/``with``, but not ``if TYPE_CHECKING:``, functions or
    classes' methods."""
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
            elif isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.With | ast.ClassDef):
                visit(node.body)

    visit(tree.body)
    return found


@pytest.mark.parametrize("role", sorted(REQ.ROLES))
def test_no_module_of_a_role_loads_what_its_image_leaves_out(role: str) -> None:
    packages, left_out = REQ.ROLES[role]
    forbidden = {REQ.MODULES[d]: d for d in left_out}
    offenders = []
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            if str(path.relative_to(ROOT)) in REQ.NOT_IN_IMAGE.get(role, ()):
                continue
            imported = _load_time_imports(ast.parse(path.read_text(), str(path)))
            offenders += [f"{path.relative_to(ROOT)}: {m}" for m in imported & forbidden.keys()]
    assert offenders == []


def test_the_requirements_are_pyprojects_less_the_roles_leftovers() -> None:
    agent = REQ.requirements("agent", [])
    controlplane = REQ.requirements("controlplane", ["s3"])
    assert {REQ.distribution(r) for r in agent} >= {"onnxruntime", "openvino", "paho-mqtt"}
    assert not {REQ.distribution(r) for r in agent} & REQ.ROLES["agent"][1]
    names = {REQ.distribution(r) for r in controlplane}
    assert {"fastapi", "sqlmodel", "psycopg", "boto3"} <= names
    assert not names & {"onnxruntime", "openvino"}
    assert REQ.distribution("psycopg[binary]>=3.1,<4") == "psycopg"
    assert set(REQ.MODULES) >= REQ.ROLES["agent"][1] | REQ.ROLES["controlplane"][1]
