"""The profile catalogue: one TOML file per device class in ``hw_profiles/profiles/``.

A profile says which hosts it fits (``[match]``), how specific it is (``priority``: the
highest-priority match wins, then the name), which backends are worth measuring there, in
the order to try them (``[[candidates]]``), and per-class ``[defaults]``. The schema::

    name = "xeon-amx"               # must equal the file name without .toml
    description = "..."
    priority = 40                   # int; more specific classes have higher numbers

    [match]                         # every condition given must hold; {} matches anything
    arch = ["x86_64"]               # any of (amd64 / arm64 are read as x86_64 / aarch64)
    isa_flags = ["amx_tile"]        # all of (names as in HostFacts.isa_flags)
    isa_flags_any = ["avx512f"]     # at least one of
    cpu_model = "Core.*Ultra"       # regex, searched case-insensitively
    board_model = "Raspberry Pi 5"  # regex over the device tree model
    gpu_name = "NVIDIA|Tesla"       # regex; some GPU's name must match
    openvino_devices = ["GPU"]      # all of (GPU also matches GPU.0, GPU.1, ...)
    onnxruntime_providers = ["CUDAExecutionProvider"]  # all of
    jetson = true                   # the host is (true) / is not (false) a Jetson

    [defaults]
    threads = 0                     # 0: the runtime's own choice (one per physical core)
    precisions = ["bf16", "f32"]    # what this class runs float models in, best first
    performance_hint = "LATENCY"    # LATENCY | THROUGHPUT | CUMULATIVE_THROUGHPUT

    [[candidates]]                  # in priority order
    runtime = "openvino"            # "onnxruntime" | "openvino"
    device = "CPU"                  # ORT: an execution provider (CUDAExecutionProvider:1,
                                    # OpenVINOExecutionProvider:GPU); OpenVINO: CPU, GPU.1, NPU
    precision = "bf16"              # "f32" | "bf16" | "f16" | "int8"; one of defaults.precisions
    hint = "LATENCY"                # optional, defaults.performance_hint
    threads = 4                     # optional, defaults.threads

Unknown keys are errors (a typo must not silently widen a match). A malformed file raises
``ProfileError`` with one line naming the file and the field.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, NoReturn

from hw_profiles.errors import ProfileError

RUNTIMES = ("onnxruntime", "openvino")
PRECISIONS = ("f32", "bf16", "f16", "int8")
HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
ORT_PROVIDERS = (
    "CPUExecutionProvider",
    "CUDAExecutionProvider",
    "TensorrtExecutionProvider",
    "OpenVINOExecutionProvider",
)
OPENVINO_DEVICES = ("CPU", "GPU", "NPU")
_OPENVINO_DEVICE = re.compile(r"^(CPU|GPU|NPU)(\.\d+)?$")
_GPU_INDEX = re.compile(r"^\d+$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


@dataclass(frozen=True)
class CandidateSpec:
    """One backend worth measuring: a runtime, its device, a precision, a hint.

    ``hint`` "" leaves the performance hint to the runtime (OpenVINO's own default);
    ``variant`` names a configuration beside the profile's own (``plain_defaults``): it
    is part of the key after a ``+`` so both can be measured, pinned and reported."""

    runtime: str
    device: str
    precision: str
    hint: str = "LATENCY"
    threads: int | None = None
    variant: str = ""

    @property
    def key(self) -> str:
        """``openvino:CPU:bf16``, ``onnxruntime:CPUExecutionProvider:f32``,
        ``onnxruntime:CPUExecutionProvider:f32+t1`` (a variant)."""
        base = f"{self.runtime}:{self.device}:{self.precision}"
        return f"{base}+{self.variant}" if self.variant else base


@dataclass(frozen=True)
class Match:
    """The ``[match]`` table of a profile; a field left empty is no condition."""

    arch: tuple[str, ...] = ()
    isa_flags: tuple[str, ...] = ()
    isa_flags_any: tuple[str, ...] = ()
    cpu_model: re.Pattern[str] | None = None
    board_model: re.Pattern[str] | None = None
    gpu_name: re.Pattern[str] | None = None
    openvino_devices: tuple[str, ...] = ()
    onnxruntime_providers: tuple[str, ...] = ()
    jetson: bool | None = None


@dataclass(frozen=True)
class Profile:
    """A device class of the catalogue (see the module docstring for the file format)."""

    name: str
    description: str
    priority: int
    candidates: tuple[CandidateSpec, ...]
    defaults: dict[str, Any] = field(default_factory=dict)
    match: Match = Match()


class _Table:
    """Typed reads from one TOML table, each error naming ``file: field``."""

    def __init__(self, source: str, prefix: str, data: Any) -> None:
        self.source, self.prefix = source, prefix
        if not isinstance(data, dict):
            self.fail("", "must be a table")
        self.data: dict[str, Any] = data

    def fail(self, key: str, why: str) -> NoReturn:
        where = f"{self.prefix}.{key}" if self.prefix and key else (key or self.prefix)
        raise ProfileError(f"{self.source}: {where}: {why}")

    def only(self, allowed: Iterable[str]) -> None:
        unknown = sorted(set(self.data) - set(allowed))
        if unknown:
            self.fail(unknown[0], "unknown key")

    def text(self, key: str, *, required: bool = True, choices: Iterable[str] = ()) -> str | None:
        if key not in self.data:
            return self.fail(key, "is required") if required else None
        value = self.data[key]
        if not isinstance(value, str) or not value:
            self.fail(key, "must be a non-empty string")
        options = tuple(choices)
        if options and value not in options:
            self.fail(key, f"{value!r} is not one of {', '.join(options)}")
        return str(value)

    def integer(self, key: str, *, minimum: int, required: bool = False) -> int | None:
        if key not in self.data:
            return self.fail(key, "is required") if required else None
        value = self.data[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            self.fail(key, f"must be an integer >= {minimum}")
        return int(value)

    def strings(self, key: str, *, choices: Iterable[str] = ()) -> tuple[str, ...]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(key, "must be a list of non-empty strings")
        options = tuple(choices)
        for item in value:
            if options and item not in options:
                self.fail(key, f"{item!r} is not one of {', '.join(options)}")
        return tuple(value)

    def pattern(self, key: str) -> re.Pattern[str] | None:
        text = self.text(key, required=False)
        if text is None:
            return None
        try:
            return re.compile(text, re.IGNORECASE)
        except re.error as exc:
            return self.fail(key, f"invalid regular expression: {exc}")


def _match(table: _Table) -> Match:
    table.only(Match.__dataclass_fields__)
    jetson = table.data.get("jetson")
    if jetson is not None and not isinstance(jetson, bool):
        table.fail("jetson", "must be true or false")
    return Match(
        arch=table.strings("arch"),
        isa_flags=table.strings("isa_flags"),
        isa_flags_any=table.strings("isa_flags_any"),
        cpu_model=table.pattern("cpu_model"),
        board_model=table.pattern("board_model"),
        gpu_name=table.pattern("gpu_name"),
        openvino_devices=table.strings("openvino_devices"),
        onnxruntime_providers=table.strings("onnxruntime_providers"),
        jetson=jetson,
    )


def _defaults(table: _Table) -> dict[str, Any]:
    table.only(("threads", "precisions", "performance_hint"))
    precisions = table.strings("precisions", choices=PRECISIONS)
    if not precisions:
        table.fail("precisions", "must name at least one precision")
    return {
        "threads": table.integer("threads", minimum=0) or 0,
        "precisions": list(precisions),
        "performance_hint": table.text("performance_hint", required=False, choices=HINTS)
        or "LATENCY",
    }


def _device_problem(runtime: str, device: str) -> str | None:
    """Why ``device`` is no device of ``runtime`` (None: it is one).

    ONNX Runtime: an execution provider, optionally qualified the way the runner plugins
    read it: ``CUDAExecutionProvider:1`` / ``TensorrtExecutionProvider:1`` (GPU index),
    ``OpenVINOExecutionProvider:GPU`` (the OpenVINO device of the EP). OpenVINO: ``CPU``,
    ``GPU``, ``NPU``, optionally numbered (``GPU.1``).
    """
    if runtime == "openvino":
        if _OPENVINO_DEVICE.match(device):
            return None
        return f"{device!r} is not one of {', '.join(OPENVINO_DEVICES)} (or GPU.1 ...)"
    provider, colon, qualifier = device.partition(":")
    if provider not in ORT_PROVIDERS:
        return f"{device!r} is not one of {', '.join(ORT_PROVIDERS)}"
    if not colon:
        return None
    if provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        ok = bool(_GPU_INDEX.match(qualifier))
    else:
        ok = provider == "OpenVINOExecutionProvider" and bool(_OPENVINO_DEVICE.match(qualifier))
    return None if ok else f"{device!r}: {qualifier!r} is no device of {provider}"


def _candidate(table: _Table, defaults: dict[str, Any]) -> CandidateSpec:
    table.only(("runtime", "device", "precision", "hint", "threads"))
    runtime = table.text("runtime", choices=RUNTIMES)
    device = str(table.text("device"))
    why = _device_problem(str(runtime), device)
    if why:
        table.fail("device", why)
    precision = table.text("precision", choices=PRECISIONS)
    if precision not in defaults["precisions"]:
        table.fail("precision", f"{precision!r} is not in defaults.precisions")
    threads = table.integer("threads", minimum=0)
    return CandidateSpec(
        runtime=str(runtime),
        device=str(device),
        precision=str(precision),
        hint=table.text("hint", required=False, choices=HINTS) or defaults["performance_hint"],
        threads=threads if threads is not None else (defaults["threads"] or None),
    )


def parse_profile(source: str, text: str, *, stem: str | None = None) -> Profile:
    """One profile from the TOML ``text`` of file ``source`` (``stem``: expected name)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: invalid TOML: {exc}") from exc
    top = _Table(source, "", data)
    top.only(("name", "description", "priority", "match", "defaults", "candidates"))
    name = str(top.text("name"))
    if not _NAME.match(name):
        top.fail("name", f"{name!r} must be lowercase letters, digits and '-'")
    if stem is not None and name != stem:
        top.fail("name", f"{name!r} must equal the file name {stem!r}")
    defaults = _defaults(_Table(source, "defaults", data.get("defaults", {})))
    raw = data.get("candidates")
    if not isinstance(raw, list) or not raw:
        top.fail("candidates", "must be a non-empty array of tables ([[candidates]])")
    candidates = tuple(
        _candidate(_Table(source, f"candidates[{i}]", item), defaults) for i, item in enumerate(raw)
    )
    keys = [c.key for c in candidates]
    duplicate = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
    if duplicate:
        top.fail("candidates", f"{duplicate} is listed twice")
    return Profile(
        name=name,
        description=str(top.text("description")),
        priority=int(top.integer("priority", minimum=0, required=True) or 0),
        candidates=candidates,
        defaults=defaults,
        match=_match(_Table(source, "match", data.get("match", {}))),
    )


def _read(directory: Traversable) -> tuple[Profile, ...]:
    entries = sorted(
        (e for e in directory.iterdir() if e.name.endswith(".toml")), key=lambda e: e.name
    )
    profiles: list[Profile] = []
    for entry in entries:
        source = str(entry)
        try:
            text = entry.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileError(f"{source}: cannot read: {exc}") from exc
        profiles.append(parse_profile(source, text, stem=entry.name.removesuffix(".toml")))
    if not profiles:
        raise ProfileError(f"{directory}: no profiles (*.toml) found")
    return tuple(profiles)


@functools.cache
def _default_catalogue() -> tuple[Profile, ...]:
    return _read(resources.files("hw_profiles") / "profiles")


def load_catalogue(directory: str | Path | None = None) -> tuple[Profile, ...]:
    """Every profile in ``directory`` (default: the packaged catalogue, read once).

    Raises ``ProfileError`` (one line: file and field) for a malformed file.
    """
    if directory is None:
        return _default_catalogue()
    path = Path(directory)
    if not path.is_dir():
        raise ProfileError(f"{path}: not a directory of profiles")
    return _read(path)
