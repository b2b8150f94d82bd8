"""Shared test helpers: the console scripts of this venv, run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def run_cli(name: str, *args: object, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run console script `name` with `args` as a subprocess; text output captured."""
    return subprocess.run(
        [str(BIN / name), *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
    )


def assert_user_error(result: subprocess.CompletedProcess, *, names: str) -> None:
    """A user mistake: exit 2, no traceback, and one stderr line (click's `Error: ...`) naming `names`."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1, result.stderr
    assert names in error_lines[0], (names, error_lines[0])


@pytest.fixture(scope="session")
def cli():
    """The `run_cli` helper as a fixture."""
    return run_cli


@pytest.fixture
def user_error():
    """The `assert_user_error` check as a fixture."""
    return assert_user_error


def write_invert_translator(folder: Path, working_size: tuple[int, int] = (32, 16), divisor: int = 4) -> Path:
    """A real ONNX translator that returns 255 - image, with its sidecar: STEM.onnx + STEM.json in `folder`.

    Inversion (not identity) makes a pipeline that writes its input instead of the engine's output fail the tests.
    """
    import onnx
    from onnx import TensorProto, helper

    from runtime.sidecar import Sidecar, file_sha256

    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT),
            helper.make_node("Sub", ["c255", "x"], ["y"]),
            helper.make_node("Cast", ["y"], ["translated"], to=TensorProto.UINT8),
        ],
        "invert",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", "H", "W", 3])],
        [helper.make_tensor_value_info("translated", TensorProto.UINT8, ["N", "H", "W", 3])],
        [helper.make_tensor("c255", TensorProto.FLOAT, [], [255.0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = folder / "invert.onnx"
    onnx.save(model, onnx_path)
    Sidecar(
        task="translate",
        architecture="invert",
        architecture_args={},
        inputs=[{"name": "images", "dtype": "uint8", "layout": "NHWC"}],
        outputs=[{"name": "translated", "dtype": "uint8", "layout": "NHWC"}],
        size_divisor=divisor,
        artifacts={"onnx": {"file": onnx_path.name, "sha256": file_sha256(onnx_path)}},
        source_checkpoint={"file": "", "sha256": ""},
        opset=17,
        ir_version=10,
        exporter_version="test",
        working_size=working_size,
    ).write(folder / "invert.json")
    return onnx_path


@pytest.fixture
def invert_translator(tmp_path) -> Path:
    """STEM.onnx of a 255-minus-input translator (working size 32x16, divisor 4), sidecar beside it."""
    return write_invert_translator(tmp_path / "artifacts")


def write_red_over_14_segmenter(folder: Path) -> Path:
    """A real ONNX 'segmenter' whose labels are the red channel // 14 (train IDs 0..18), with its sidecar."""
    import onnx
    from onnx import TensorProto, helper

    from runtime.labels import CLASS_NAMES, PALETTE, TRAIN_ID_TO_LABEL_ID
    from runtime.sidecar import Sidecar, file_sha256

    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["images", "channel"], ["red"], axis=3),
            helper.make_node("Div", ["red", "fourteen"], ["labels"]),
        ],
        "red_over_14",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", "H", "W", 3])],
        [helper.make_tensor_value_info("labels", TensorProto.UINT8, ["N", "H", "W"])],
        [
            helper.make_tensor("channel", TensorProto.INT64, [], [0]),
            helper.make_tensor("fourteen", TensorProto.UINT8, [], [14]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = folder / "seg.onnx"
    onnx.save(model, onnx_path)
    Sidecar(
        task="segment",
        architecture="red_over_14",
        architecture_args={},
        inputs=[{"name": "images", "dtype": "uint8", "layout": "NHWC"}],
        outputs=[{"name": "labels", "dtype": "uint8", "layout": "NHW"}],
        size_divisor=1,
        artifacts={"onnx": {"file": onnx_path.name, "sha256": file_sha256(onnx_path)}},
        source_checkpoint={"file": "", "sha256": ""},
        opset=17,
        ir_version=10,
        exporter_version="test",
        scale=1.0,
        class_names=list(CLASS_NAMES),
        train_id_to_label_id=TRAIN_ID_TO_LABEL_ID.tolist(),
        palette=PALETTE.tolist(),
    ).write(folder / "seg.json")
    return onnx_path


@pytest.fixture
def red_segmenter(tmp_path) -> Path:
    """STEM.onnx of a segmenter whose labels are red // 14 (train IDs 0..18), sidecar beside it."""
    return write_red_over_14_segmenter(tmp_path / "model")


@pytest.fixture(scope="session")
def shared_invert_translator(tmp_path_factory) -> Path:
    """Like `invert_translator`, made once per session for tests that only read it."""
    return write_invert_translator(tmp_path_factory.mktemp("invert"))


@pytest.fixture(scope="session")
def shared_red_segmenter(tmp_path_factory) -> Path:
    """Like `red_segmenter`, made once per session for tests that only read it."""
    return write_red_over_14_segmenter(tmp_path_factory.mktemp("segmenter"))
