"""export-trt --int8 on a model with no layer INT8 computes (a 255-minus-input graph): one line, no file."""

from __future__ import annotations

import pytest

from helpers import write_gta5
from uda_trt.export.int8 import calibration_set, export_int8
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.sidecar import load_sidecar


def test_int8_of_a_model_without_quantizable_layers_is_one_line(invert_translator, tmp_path):
    before = load_sidecar(invert_translator)
    with pytest.raises(UserError, match="has no Conv, ConvTranspose, MatMul, Gemm layer for INT8 to quantize"):
        export_int8(invert_translator, calibration_set(write_gta5(tmp_path / "gta5", count=4, size=(64, 32)), count=2))
    assert not invert_translator.with_name("invert.int8.onnx").exists()
    assert load_sidecar(invert_translator) == before
