"""The sidecar dataclass: exact JSON round trip, strict validation naming file and field, sha256 checks."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.sidecar import Sidecar, artifact_key, file_sha256, load_sidecar, sidecar_path


def make_sidecar(artifact: Path, task: str = "translate") -> Sidecar:
    """A complete sidecar describing `artifact` (written as a few bytes if missing)."""
    if not artifact.exists():
        artifact.write_bytes(b"not really onnx")
    fields = (
        {"working_size": (32, 16)}
        if task == "translate"
        else {
            "scale": 0.5,
            "class_names": ["road"],
            "train_id_to_label_id": [7],
            "palette": [[128, 64, 128]],
        }
    )
    return Sidecar(
        task=task,
        architecture="resnet_generator",
        architecture_args={"ngf": 4, "n_blocks": 2},
        inputs=[{"name": "images", "dtype": "uint8", "layout": "NHWC"}],
        outputs=[{"name": "translated" if task == "translate" else "labels", "dtype": "uint8", "layout": "NHWC"}],
        size_divisor=4 if task == "translate" else 1,
        artifacts={"onnx": {"file": artifact.name, "sha256": file_sha256(artifact)}},
        source_checkpoint={"file": "latest_net_G_A.pth", "sha256": "0" * 64},
        opset=17,
        ir_version=10,
        exporter_version="test",
        validation={"onnx": {"fraction": 1.0}},
        onnx_rewrites={"output_phases": [{"conv": "c", "phases": "c/phases", "interleave": "c/i", "crop": "c/crop"}]},
        **fields,
    )


@pytest.mark.parametrize("task", ["translate", "segment"])
def test_round_trip(tmp_path, task):
    artifact = tmp_path / "model.onnx"
    sidecar = make_sidecar(artifact, task)
    sidecar.write(sidecar_path(artifact))
    assert load_sidecar(artifact) == sidecar
    assert load_sidecar(tmp_path / "model.json") == sidecar
    data = json.loads((tmp_path / "model.json").read_text())
    assert data["schema_version"] == 1 and data["channel_order"] == "RGB"
    assert not list(tmp_path.glob(".*partial"))


def test_sidecar_path_and_sha256(tmp_path):
    assert sidecar_path(Path("a/m.onnx")) == Path("a/m.json")
    assert sidecar_path(Path("a/m.fp16.onnx")) == Path("a/m.json")
    assert sidecar_path(Path("a/m.engine")) == Path("a/m.json")
    assert sidecar_path(Path("a/m.json")) == Path("a/m.json")
    with pytest.raises(UserError, match="not a model artifact"):
        sidecar_path(Path("a/m.pth"))
    data = bytes(range(256)) * 5000  # > 1 MiB: several chunks
    (tmp_path / "f").write_bytes(data)
    assert file_sha256(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def _broken(tmp_path: Path, edit) -> str:
    """Write a sidecar, apply `edit` to its JSON dict, and return the UserError message of loading it."""
    artifact = tmp_path / "model.onnx"
    make_sidecar(artifact).write(tmp_path / "model.json")
    data = json.loads((tmp_path / "model.json").read_text())
    edit(data)
    (tmp_path / "model.json").write_text(json.dumps(data))
    with pytest.raises(UserError) as info:
        load_sidecar(artifact)
    message = info.value.format_message()
    assert "\n" not in message
    assert "model.json" in message
    return message


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d.update(schema_version=2), "schema_version"),
        (lambda d: d.pop("schema_version"), "schema_version"),
        (lambda d: d.pop("task"), "task"),
        (lambda d: d.update(task="detect"), "task"),
        (lambda d: d.update(opset="17"), "opset"),
        (lambda d: d.update(ir_version=True), "ir_version"),
        (lambda d: d.update(size_divisor=0), "size_divisor"),
        (lambda d: d.update(working_size=[32]), "working_size"),
        (lambda d: d.update(working_size=None), "working_size"),
        (lambda d: d.update(inputs=[{"name": "images", "dtype": "uint8"}]), "inputs[0].layout"),
        (lambda d: d.update(outputs=[]), "outputs"),
        (lambda d: d["artifacts"]["onnx"].pop("sha256"), "artifacts.onnx.sha256"),
        (lambda d: d["artifacts"].update(plan={"file": "x", "sha256": "y"}), "artifacts.plan"),
        (lambda d: d.update(source_checkpoint="x.pth"), "source_checkpoint"),
        (lambda d: d.update(channel_order="BGR"), "channel_order"),
        (lambda d: d.update(colour="red"), "colour"),
        (lambda d: d.update(engine=[1]), "engine"),
        (lambda d: d.update(onnx_rewrites=[1]), "onnx_rewrites"),
    ],
)
def test_invalid_fields_are_named(tmp_path, edit, field):
    message = _broken(tmp_path, edit)
    assert f"'{field}'" in message


def test_segmenter_needs_scale_and_class_table(tmp_path):
    def to_segmenter(data):
        data["task"] = "segment"
        data["scale"] = 0.5

    assert "'class_names'" in _broken(tmp_path, to_segmenter)


def test_unreadable_and_missing_sidecar(tmp_path):
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(b"x")
    with pytest.raises(UserError, match="sidecar not found"):
        load_sidecar(artifact)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(UserError, match="not a readable JSON sidecar"):
        load_sidecar(artifact)
    (tmp_path / "model.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="must be a JSON object"):
        load_sidecar(artifact)


def test_changed_artifact_is_refused(tmp_path):
    artifact = tmp_path / "model.onnx"
    make_sidecar(artifact).write(tmp_path / "model.json")
    artifact.write_bytes(b"re-exported later")
    with pytest.raises(UserError, match="does not match") as info:
        load_sidecar(artifact)
    assert "model.onnx" in info.value.format_message()
    assert load_sidecar(artifact, verify=False).task == "translate"


def test_artifact_not_listed_is_refused(tmp_path):
    artifact = tmp_path / "model.onnx"
    make_sidecar(artifact).write(tmp_path / "model.json")
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"plan")
    with pytest.raises(UserError, match="lists no 'engine' artifact"):
        load_sidecar(engine)


ENGINE_FACTS = {
    "tensorrt_version": "10.13.0",
    "gpu_name": "NVIDIA H100 80GB HBM3",
    "compute_capability": "9.0",
    "profile": {"min": [1, 16, 32, 3], "opt": [4, 16, 32, 3], "max": [8, 16, 32, 3]},
}


def test_int8_engine_has_its_own_suffix_key_and_block(tmp_path):
    """STEM.int8.engine is not taken for STEM.engine: its own artifacts key, its own sidecar block, required when
    listed and validated like `engine`; engine_facts gives each engine file its block."""
    assert sidecar_path(Path("a/m.int8.engine")) == Path("a/m.json")
    with pytest.raises(UserError, match=r"expected a .onnx, .fp16.onnx, .int8.onnx, .engine or .int8.engine file"):
        artifact_key(Path("a/m.plan"))
    assert [artifact_key(Path(f"a/m{suffix}")) for suffix in (".int8.engine", ".engine", ".int8.onnx", ".onnx")] == [
        "int8_engine",
        "engine",
        "int8_onnx",
        "onnx",
    ]
    artifact, engine = tmp_path / "model.onnx", tmp_path / "model.int8.engine"
    engine.write_bytes(b"int8 plan")
    sidecar = make_sidecar(artifact)
    artifacts = {**sidecar.artifacts, "int8_engine": {"file": engine.name, "sha256": file_sha256(engine)}}
    dataclasses.replace(sidecar, artifacts=artifacts).write(tmp_path / "model.json")
    with pytest.raises(UserError, match=r"field 'int8_engine' is missing \(an int8_engine artifact needs") as info:
        load_sidecar(engine)
    assert "model.json" in info.value.format_message()
    broken = {**ENGINE_FACTS, "profile": {**ENGINE_FACTS["profile"], "max": [8, 16, 32]}}
    dataclasses.replace(sidecar, artifacts=artifacts, int8_engine=broken).write(tmp_path / "model.json")
    with pytest.raises(UserError, match=r"'int8_engine.profile.max' must be \[batch, height, width, 3\]"):
        load_sidecar(engine)
    listed = dataclasses.replace(sidecar, artifacts=artifacts, int8_engine=ENGINE_FACTS)
    listed.write(tmp_path / "model.json")
    loaded = load_sidecar(engine)  # listed with its sha256: accepted, and round-trips
    assert loaded == listed and loaded.engine is None
    assert loaded.engine_facts(engine) == ENGINE_FACTS
    assert loaded.engine_facts(tmp_path / "model.engine") is None and loaded.engine_facts(artifact) is None
    (tmp_path / "model.engine").write_bytes(b"int8 plan")
    with pytest.raises(UserError, match="lists no 'engine' artifact"):  # the FP16 engine's entry is not borrowed
        load_sidecar(tmp_path / "model.engine")
