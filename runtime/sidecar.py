"""The artifact sidecar `STEM.json`: the one description of an exported model that `runtime` trusts.

`export` writes it next to `STEM.onnx` / `STEM.fp16.onnx` / `STEM.int8.onnx` / `STEM.engine` / `STEM.int8.engine`;
every runner reads it through `load_sidecar`, which validates every field (schema v1, docs/contracts.md "Sidecar")
and checks the artifact's sha256, so nothing about a model (tensor names, sizes, class table) is guessed at run time
and a stale or hand-edited artifact is refused in one line instead of producing wrong images.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.files import write_json

SCHEMA_VERSION = 1
TASKS = ("translate", "segment")
# artifacts key by file suffix; the longest suffix is tried first so STEM.fp16.onnx is not taken for STEM.onnx, nor
# STEM.int8.engine for STEM.engine
ARTIFACT_SUFFIXES = {
    ".int8.engine": "int8_engine",
    ".fp16.onnx": "fp16_onnx",
    ".int8.onnx": "int8_onnx",
    ".engine": "engine",
    ".onnx": "onnx",
}
ENGINE_KEYS = ("engine", "int8_engine")  # the artifacts that are TensorRT engines, each with its own sidecar block
_EXPECTED = "expected a .onnx, .fp16.onnx, .int8.onnx, .engine or .int8.engine file"


@dataclasses.dataclass(frozen=True)
class Sidecar:
    """Everything a runner needs to feed an exported model and interpret its output (schema version 1).

    Dicts and lists hold JSON-plain values so `to_dict` / `from_dict` round-trip exactly.
    """

    task: str  # "translate" | "segment"
    architecture: str
    architecture_args: dict[str, Any]
    inputs: list[dict[str, str]]  # [{name, dtype, layout}], e.g. {"images", "uint8", "NHWC"}
    outputs: list[dict[str, str]]
    size_divisor: int  # input H and W must be multiples (translators); 1 for segmenters
    artifacts: dict[str, dict[str, str]]  # ARTIFACT_SUFFIXES' keys -> {file, sha256}
    source_checkpoint: dict[str, str]  # {file, sha256}
    opset: int
    ir_version: int
    exporter_version: str
    channel_order: str = "RGB"
    working_size: tuple[int, int] | None = None  # (w, h): translators run at one size per job
    scale: float | None = None  # segmenters: the graph resizes full-resolution input by this factor
    class_names: list[str] | None = None  # segmenters: train-ID order
    train_id_to_label_id: list[int] | None = None
    palette: list[list[int]] | None = None  # segmenters: RGB per train ID
    onnx_rewrites: dict[str, Any] | None = None  # how STEM.onnx differs from the traced graph (export.output_phases)
    fp16_policy: dict[str, Any] | None = None  # {"fp32_op_types": [...]} once a FP16 ONNX exists
    engine: dict[str, Any] | None = None  # {tensorrt_version, gpu_name, compute_capability, profile}
    int8_policy: dict[str, Any] | None = None  # what STEM.int8.onnx quantized and how it was calibrated
    int8_engine: dict[str, Any] | None = None  # as `engine`, for STEM.int8.engine (built from STEM.int8.onnx)
    validation: dict[str, Any] | None = None  # measured parity figures per artifact key
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """JSON-plain dict (tuples become lists) in field order."""
        data = dataclasses.asdict(self)
        if self.working_size is not None:
            data["working_size"] = list(self.working_size)
        return data

    @classmethod
    def from_dict(cls, data: Any, source: str = "sidecar") -> Sidecar:
        """Validate `data` (parsed JSON) field by field; errors name `source` and the field."""
        return _validate(data, source)

    def write(self, path: Path) -> None:
        """Write as indented JSON, atomically (a crash never leaves half a sidecar)."""
        write_json(Path(path), self.to_dict())

    def input_name(self) -> str:
        return self.inputs[0]["name"]

    def output_name(self) -> str:
        return self.outputs[0]["name"]

    def engine_facts(self, artifact: Path) -> dict[str, Any] | None:
        """The block describing the engine file `artifact`: `engine` for STEM.engine, `int8_engine` for
        STEM.int8.engine (TensorRT version, GPU, profile); None for a file that is no engine or has no block."""
        key = artifact_key(artifact)
        return getattr(self, key) if key in ENGINE_KEYS else None


def sidecar_path(artifact: Path) -> Path:
    """STEM.onnx / .fp16.onnx / .int8.onnx / .engine / .int8.engine (or STEM.json itself) -> STEM.json."""
    artifact = Path(artifact)
    if artifact.name.endswith(".json"):
        return artifact
    for suffix in ARTIFACT_SUFFIXES:
        if artifact.name.endswith(suffix) and len(artifact.name) > len(suffix):
            return artifact.with_name(artifact.name[: -len(suffix)] + ".json")
    raise UserError(f"{artifact}: not a model artifact; {_EXPECTED}")


def artifact_key(artifact: Path) -> str:
    """The sidecar's `artifacts` key for a file: "onnx", "fp16_onnx", "int8_onnx", "engine" or "int8_engine"."""
    for suffix, key in ARTIFACT_SUFFIXES.items():
        if Path(artifact).name.endswith(suffix):
            return key
    raise UserError(f"{artifact}: not a model artifact; {_EXPECTED}")


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def load_sidecar(path: Path, verify: bool = True) -> Sidecar:
    """Read and validate the sidecar of an artifact (or a STEM.json path).

    Given an artifact and `verify`, the artifact must be listed in the sidecar and its sha256 must match: a
    re-exported ONNX next to an old sidecar (or the reverse) is refused rather than run with the wrong description.
    """
    path = Path(path)
    json_path = sidecar_path(path)
    if not json_path.is_file():
        raise UserError(f"{json_path}: sidecar not found (export-trt writes it next to {path.name})")
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{json_path}: not a readable JSON sidecar ({error})") from None
    sidecar = _validate(data, str(json_path))
    if verify and path != json_path:
        verify_artifact(sidecar, path, json_path)
    return sidecar


def verify_artifact(sidecar: Sidecar, artifact: Path, json_path: Path | None = None) -> None:
    """Refuse an artifact the sidecar does not describe, or whose bytes changed since export."""
    artifact = Path(artifact)
    where = json_path or sidecar_path(artifact)
    key = artifact_key(artifact)
    entry = sidecar.artifacts.get(key)
    if entry is None:
        raise UserError(f"{artifact}: {where} lists no '{key}' artifact; re-run export-trt")
    if not artifact.is_file():
        raise UserError(f"{artifact}: file not found")
    actual = file_sha256(artifact)
    if actual != entry["sha256"]:
        raise UserError(
            f"{artifact}: sha256 {actual[:12]}... does not match {where} ({entry['sha256'][:12]}...); "
            "the file changed after export, re-run export-trt"
        )


# --- validation -------------------------------------------------------------------------------------------------


def _fail(source: str, field: str, problem: str) -> UserError:
    return UserError(f"{source}: field '{field}' {problem}")


def _check(value: Any, kind: type | tuple[type, ...], source: str, field: str) -> Any:
    # bool is an int in Python; a sidecar with "opset": true is still wrong
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise _fail(source, field, f"must be {_kind_name(kind)}, got {value!r}")
    if not isinstance(value, kind):
        raise _fail(source, field, f"must be {_kind_name(kind)}, got {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {"str": "a string", "int": "an integer", "float": "a number", "dict": "an object", "list": "a list"}
    return " or ".join(names.get(k.__name__, k.__name__) for k in kinds)


def _string_map(value: Any, keys: tuple[str, ...], source: str, field: str) -> dict[str, str]:
    _check(value, dict, source, field)
    for key in keys:
        if key not in value:
            raise _fail(source, f"{field}.{key}", "is missing")
        _check(value[key], str, source, f"{field}.{key}")
    return value


def _tensor_list(value: Any, source: str, field: str) -> list[dict[str, str]]:
    _check(value, list, source, field)
    if not value:
        raise _fail(source, field, "must list at least one tensor")
    for i, item in enumerate(value):
        _string_map(item, ("name", "dtype", "layout"), source, f"{field}[{i}]")
    return value


def _validate_engine(engine: dict, source: str, block: str = "engine") -> None:
    """The facts the TensorRT runner relies on: versions to compare, and profile ranges N x H x W x 3.
    `block`: the field being checked, "engine" or "int8_engine"."""
    for key in ("tensorrt_version", "gpu_name", "compute_capability"):
        if key not in engine:
            raise _fail(source, f"{block}.{key}", "is missing")
        _check(engine[key], str, source, f"{block}.{key}")
    profile = _check(engine.get("profile"), dict, source, f"{block}.profile")
    for key in ("min", "opt", "max"):
        shape = profile.get(key)
        if (
            not isinstance(shape, list)
            or len(shape) != 4
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape)
        ):
            raise _fail(source, f"{block}.profile.{key}", "must be [batch, height, width, 3] positive integers")


_REQUIRED = (
    "schema_version",
    "task",
    "architecture",
    "architecture_args",
    "inputs",
    "outputs",
    "size_divisor",
    "artifacts",
    "source_checkpoint",
    "opset",
    "ir_version",
    "exporter_version",
)


def _validate(data: Any, source: str) -> Sidecar:
    if not isinstance(data, dict):
        raise UserError(f"{source}: a sidecar must be a JSON object")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise _fail(source, "schema_version", f"is {version!r}; this version of uda-trt reads {SCHEMA_VERSION}")
    known = {f.name for f in dataclasses.fields(Sidecar)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise _fail(source, unknown[0], "is not part of sidecar schema 1")
    for name in _REQUIRED:
        if name not in data:
            raise _fail(source, name, "is missing")

    task = _check(data["task"], str, source, "task")
    if task not in TASKS:
        raise _fail(source, "task", f"must be one of {', '.join(TASKS)}, got {task!r}")
    _check(data["architecture"], str, source, "architecture")
    _check(data["architecture_args"], dict, source, "architecture_args")
    _tensor_list(data["inputs"], source, "inputs")
    _tensor_list(data["outputs"], source, "outputs")
    if _check(data["size_divisor"], int, source, "size_divisor") < 1:
        raise _fail(source, "size_divisor", "must be >= 1")
    artifacts = _check(data["artifacts"], dict, source, "artifacts")
    if not artifacts:
        raise _fail(source, "artifacts", "must list at least one artifact")
    for key, entry in artifacts.items():
        if key not in ARTIFACT_SUFFIXES.values():
            raise _fail(source, f"artifacts.{key}", f"is not one of {', '.join(ARTIFACT_SUFFIXES.values())}")
        _string_map(entry, ("file", "sha256"), source, f"artifacts.{key}")
    _string_map(data["source_checkpoint"], ("file", "sha256"), source, "source_checkpoint")
    for name in ("opset", "ir_version"):
        _check(data[name], int, source, name)
    _check(data["exporter_version"], str, source, "exporter_version")
    if _check(data.get("channel_order", "RGB"), str, source, "channel_order") != "RGB":
        raise _fail(source, "channel_order", "must be RGB")

    working_size = data.get("working_size")
    if working_size is not None:
        _check(working_size, list, source, "working_size")
        if len(working_size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in working_size):
            raise _fail(source, "working_size", "must be [width, height] integers")
        working_size = (working_size[0], working_size[1])
    scale = data.get("scale")
    if scale is not None and (_check(scale, (int, float), source, "scale") <= 0):
        raise _fail(source, "scale", "must be > 0")
    if task == "translate" and working_size is None:
        raise _fail(source, "working_size", "is missing (translators run at one working size)")
    if task == "segment":
        if scale is None:
            raise _fail(source, "scale", "is missing (segmenters record their working scale)")
        for name in ("class_names", "train_id_to_label_id", "palette"):
            if data.get(name) is None:
                raise _fail(source, name, "is missing (segmenters record their class table)")
    for name in ("class_names", "train_id_to_label_id", "palette"):
        if data.get(name) is not None:
            _check(data[name], list, source, name)
    for name in ("onnx_rewrites", "fp16_policy", "int8_policy", *ENGINE_KEYS, "validation"):
        if data.get(name) is not None:
            _check(data[name], dict, source, name)
    for name in ENGINE_KEYS:
        if data.get(name) is not None:
            _validate_engine(data[name], source, name)
        elif name in artifacts:
            raise _fail(source, name, f"is missing (an {name} artifact needs its TensorRT version, GPU and profile)")

    values = {name: data[name] for name in data if name in known}
    values["working_size"] = working_size
    values["scale"] = float(scale) if scale is not None else None
    return Sidecar(**values)
