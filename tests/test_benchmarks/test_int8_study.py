"""run-uda --int8's stages (benchmarks.int8_study) in process, on real exports: an untrained LR-ASPP segmenter, whose
near-constant labels survive INT8 (its gate passes), and a random tiny ResNet generator, whose INT8 outputs do not
(its gate fails, and the study goes on). The stages' bookkeeping (evaluation, report figures, reuse on a rerun) is
checked against the real files and an independent evaluate-seg run. The stages quantize with the hidden "none"
keep-float policy (MinMax, nothing kept in float): the measured policy, about 7 s of CPU per LR-ASPP quantization, is
tested on the export itself (tests/test_export/test_int8.py). The smoke study with --int8 is in
commands/test_run_uda.py."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import run_cli, write_cityscapes, write_gta5
from uda_trt.benchmarks.int8_study import int8_html, int8_markdown, run_int8_stages
from uda_trt.export.onnx_export import export_onnx
from uda_trt.runtime.evaluate import evaluate_engine
from uda_trt.runtime.jobs.timing import StageTimer
from uda_trt.train.checkpoints import save_segmenter_checkpoint
from uda_trt.train.networks import ResnetGenerator
from uda_trt.train.segmenters import NORMALIZATION, build_segmenter


def _exports(folder):
    """(translator ONNX, segmenter ONNX): a random ResNet generator (ngf 4, one block, 32x16) and an untrained
    LR-ASPP segmenter at scale 0.5, exported without FP16."""
    torch.manual_seed(0)
    generator = folder / "cyclegan" / "latest_net_G_A.pth"
    generator.parent.mkdir(parents=True)
    torch.save(ResnetGenerator(ngf=4, n_blocks=1).state_dict(), generator)
    config = {"architecture": "lraspp_mobilenet_v3_large", "num_classes": 19, "scale": 0.5}
    segmenter = folder / "segmenter" / "best.pt"
    model = build_segmenter(config["architecture"], num_classes=19)
    save_segmenter_checkpoint(segmenter, {**config, "normalization": NORMALIZATION}, model.state_dict())
    translator = export_onnx(generator, output_dir=folder / "artifacts", working_size=(32, 16), fp16=False)
    segmenter_export = export_onnx(segmenter, output_dir=folder / "artifacts" / "oracle", fp16=False)
    return translator.onnx_path, segmenter_export.onnx_path


@pytest.mark.slow
def test_int8_stages_report_int8_figures_beside_the_fp32_ones(tmp_path):
    source = write_gta5(tmp_path / "gta5", count=6, size=(64, 32))
    target = tmp_path / "cityscapes"
    write_cityscapes(target, {"aachen": 4, "bremen": 4}, size=(64, 32), seed=1, split="train")
    write_cityscapes(target, {"aachen": 2, "bremen": 2}, size=(64, 32), seed=2, split="val")
    translator, segmenter = _exports(tmp_path)
    metrics = evaluate_engine(segmenter, target, "val", output=tmp_path / "eval" / "oracle", figures=False)
    arms = {"oracle": {"artifact": str(segmenter), "metrics": metrics}}
    fcn = {"segmenter": None, "reason": "not measured in this test"}
    out, timer = tmp_path / "study", StageTimer()

    def stages() -> dict:
        return run_int8_stages(
            out, timer, translator=translator, translate_size=(32, 16), source_root=source, target_root=target,
            val_split="val", arms=arms, fcn=fcn, keep_float="none",
        )  # fmt: skip

    section = stages()
    entry = section["translator"]
    assert not entry["passed"] and entry["artifact"] is None and "fcn_score" not in entry
    assert "INT8 gate failed" in entry["error"] and " under " in entry["error"]
    assert not translator.with_suffix(".int8.onnx").exists() and not (out / "translated_int8").exists()

    result = section["segmenters"]["oracle"]
    assert result["passed"] and result["calibration"]["source"] == "cityscapes layout, split train"
    assert result["fp32_miou"] == metrics["mean_iou"]
    evaluated = run_cli(
        "evaluate-seg", "--engine", result["artifact"], "--cityscapes", target, "--output", tmp_path / "int8",
        "--no-figures",
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    assert result["int8_miou"] == json.loads((tmp_path / "int8" / "metrics.json").read_text())["mean_iou"]
    assert result["miou_change_points"] == pytest.approx(100 * (result["int8_miou"] - result["fp32_miou"]))
    assert not result["kept_from_a_previous_run"]
    markdown = "\n".join(int8_markdown(section))
    assert "| translator | **failed**: INT8 gate failed" in markdown and "| oracle segmenter | passed |" in markdown
    row = f"| oracle | {100 * result['fp32_miou']:.1f} | {100 * result['int8_miou']:.1f} |"
    assert row in markdown
    tables = dict(int8_html(section))  # index.html: the same rows, no FCN table without an INT8 translation
    assert list(tables) == ["INT8 artifacts: gates against the FP32 ONNX", "Target-val mIoU (%), FP32 and INT8"]
    gates, miou = tables.values()
    assert "<td>translator</td><td>failed: INT8 gate failed" in gates and "<td>oracle segmenter</td><td>passed" in gates
    assert f"<td>oracle</td><td>{100 * result['fp32_miou']:.1f}</td><td>{100 * result['int8_miou']:.1f}</td>" in miou
    assert int8_html(None) == []

    again = stages()  # a rerun keeps the passed INT8 export (same FP32 file, same calibration images)
    assert again["segmenters"]["oracle"]["kept_from_a_previous_run"]
    assert again["segmenters"]["oracle"]["int8_miou"] == result["int8_miou"]
    assert not again["translator"]["passed"]  # a failed one is tried again, and fails again
