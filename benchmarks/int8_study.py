"""run-uda --int8: the study's artifacts at INT8, each beside its FP32 figures.

After the FP32 study, export-trt's INT8 step (export.int8) quantizes the adapted translator, calibrated on the
source training images (the domain it translates), and each arm's segmenter, calibrated on the target training
images (the domain it is scored on; never val), with the gates enforced against the FP32 ONNX on held-out images of
the same data. The INT8 translator translates the source into OUT/translated_int8 (its gate figures and, with an
oracle, the FCN-score of its translation beside the FP32 one); each INT8 segmenter is scored on target val into
OUT/eval_int8/ARM (its mIoU beside the FP32 arm's). A failed gate does not stop the study: the report carries the
gate's one-line verdict (which gate, by how much) and no INT8 figure for that artifact.

Resuming: an INT8 export is kept when the sidecar beside its FP32 ONNX lists it (sha256 verified) with a passed gate
on the same calibration and held-out images (their list hashes); the FP32 export it came from is kept only when it
is the export of the same checkpoint (uda.export_once), and a re-export rewrites the sidecar without it. A failed
export is retried (cheap at demo size, and a retry sees a changed export.int8). The INT8 translation resumes like the
FP32 one, and the evaluations are redone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from uda_trt.benchmarks.figures import ARM_TITLES
from uda_trt.export.int8 import DEFAULT_CALIBRATION_IMAGES, GATES, CalibrationSet
from uda_trt.export.int8_eval import miou_change_points
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.files import atomic_write_text
from uda_trt.runtime.jobs.timing import StageTimer
from uda_trt.runtime.sidecar import load_sidecar

log = logging.getLogger(__name__)

TRANSLATED_INT8 = "translated_int8"  # OUT/translated_int8: the source translated by the INT8 translator
EVAL_INT8 = "eval_int8"  # OUT/eval_int8/ARM: each INT8 segmenter's evaluation on target val
HEADING = "## INT8 artifacts"
_CALIBRATION_KEYS = ("seed", "images", "list_sha256", "held_out_images", "held_out_sha256")


def int8_path_of(onnx_path: Path) -> Path:
    """STEM.onnx -> STEM.int8.onnx, beside it."""
    return onnx_path.with_name(onnx_path.name[: -len(".onnx")] + ".int8.onnx")


def is_int8_of(int8_path: Path, data: CalibrationSet, keep_float: str = "measured") -> bool:
    """Whether `int8_path` is a finished INT8 export calibrated and gated on `data`'s images: its sidecar lists it
    (sha256 verified), records a passed gate, the keep-float policy `keep_float` and the same image lists."""
    try:
        sidecar = load_sidecar(int8_path)
    except UserError:
        return False
    policy = sidecar.int8_policy or {}
    recorded = policy.get("calibration") or {}
    wanted = data.describe()
    gate = (sidecar.validation or {}).get("int8_onnx") or {}
    same_data = all(recorded.get(key) == wanted[key] for key in _CALIBRATION_KEYS)
    return same_data and policy.get("keep_float") == keep_float and gate.get("passed") is True


def export_int8_once(onnx_path: Path, data: CalibrationSet, keep_float: str = "measured") -> dict[str, Any]:
    """STEM.int8.onnx of `onnx_path` calibrated on `data` (kept when it already is that export), described for the
    report; a failed gate is reported, not raised: {"passed": False, "error": the gate's one line}. keep_float:
    export.int8's policy ("none", the harmful one, only in tests of the study's bookkeeping: it fails fast, without a
    sensitivity pass, and calibrates with MinMax instead of trying the three methods)."""
    from uda_trt.export.int8 import export_int8
    from uda_trt.export.parity import ParityError

    int8_path = int8_path_of(onnx_path)
    reused = is_int8_of(int8_path, data, keep_float)
    if reused:
        log.info("%s is the INT8 export of %s on the same calibration images; kept", int8_path, onnx_path)
    else:
        try:
            export_int8(onnx_path, data, "minmax" if keep_float == "none" else "auto", keep_float)
        except ParityError as error:
            message = error.format_message()
            log.warning("INT8 of %s: %s", onnx_path, message)
            return {"fp32_artifact": str(onnx_path), "artifact": None, "passed": False, "error": message}
    sidecar = load_sidecar(int8_path)
    policy = sidecar.int8_policy
    calibration = policy["calibration"]
    return {
        "fp32_artifact": str(onnx_path),
        "artifact": str(int8_path),
        "artifact_sha256": sidecar.artifacts["int8_onnx"]["sha256"],
        "passed": True,
        "error": None,
        "kept_from_a_previous_run": reused,
        "gate": sidecar.validation["int8_onnx"],
        "calibration": {key: calibration.get(key) for key in ("method", "source", *_CALIBRATION_KEYS)},
        "quantized_layers": len(policy["quantized_nodes"]),
        "float_layers": len(policy["float_nodes"]),
    }


def run_int8_stages(
    out: Path,
    timer: StageTimer,
    *,
    translator: Path,
    translate_size: tuple[int, int] | None,
    source_root: Path,
    target_root: Path,
    val_split: str,
    arms: dict[str, dict],
    fcn: dict,
    calibration_images: int = DEFAULT_CALIBRATION_IMAGES,
    keep_float: str = "measured",
) -> dict[str, Any]:
    """The report's "int8" section: the INT8 translator (gates, translation, FCN-score beside FP32) and each arm's
    INT8 segmenter (gate, target-val mIoU beside FP32), every step timed by `timer` as an int8_* stage.

    `arms` and `fcn` are the FP32 study's report entries (uda._run_stages): their FP32 figures are copied beside the
    INT8 ones, so the two always come from the same run.
    """
    from uda_trt.benchmarks.uda import fcn_scores, translation_resumable
    from uda_trt.export.int8 import calibration_set
    from uda_trt.runtime.evaluate import evaluate_engine
    from uda_trt.runtime.translate import TranslateJob, batch_translate

    with timer.stage("int8_export_translator"):
        entry = export_int8_once(translator, calibration_set(source_root, calibration_images), keep_float)
    if entry["passed"]:
        int8_translator, translated = Path(entry["artifact"]), out / TRANSLATED_INT8
        with timer.stage("int8_batch_translate"):
            job = TranslateJob(
                artifact=int8_translator,
                input_root=source_root,
                output_root=translated,
                size=translate_size,
                overwrite=not translation_resumable(translated, int8_translator, source_root),
            )
            entry["batch_translate"] = batch_translate(job)
            entry["translated"] = str(translated)
        with timer.stage("int8_fcn_score"):
            if fcn.get("segmenter") is None:
                entry["fcn_score"] = {"segmenter": None, "reason": fcn["reason"]}
            else:
                int8_fcn = fcn_scores(arms, {"int8": translated})
                entry["fcn_score"] = {
                    "segmenter": int8_fcn["segmenter"],
                    "artifact": int8_fcn["artifact"],
                    "fp32": fcn["sets"]["translated"],
                    "int8": int8_fcn["sets"]["int8"],
                }

    segmenters: dict[str, dict] = {}
    target_train = calibration_set(target_root, calibration_images, "train")
    for arm, arm_entry in arms.items():
        with timer.stage(f"int8_export_segmenter_{arm}"):
            result = export_int8_once(Path(arm_entry["artifact"]), target_train, keep_float)
        result["fp32_miou"] = arm_entry["metrics"]["mean_iou"]
        if result["passed"]:
            with timer.stage(f"int8_evaluate_{arm}"):
                metrics = evaluate_engine(
                    Path(result["artifact"]), target_root, split=val_split, output=out / EVAL_INT8 / arm
                )
            result["int8_miou"] = metrics["mean_iou"]
            result["miou_change_points"] = miou_change_points(result["fp32_miou"], metrics["mean_iou"])
            result["metrics"] = metrics
        segmenters[arm] = result
    return {"calibration_images": calibration_images, "translator": entry, "segmenters": segmenters}


def int8_summary_line(section: dict[str, Any]) -> str:
    """One line for the console: each INT8 artifact's gate and, for segmenters, the mIoU change."""
    translator = section["translator"]
    parts = [f"translator {'passed' if translator['passed'] else 'FAILED'}"]
    for arm, entry in section["segmenters"].items():
        if not entry["passed"]:
            parts.append(f"{arm} FAILED")
            continue
        change = entry["miou_change_points"]
        parts.append(f"{arm} {_percent(entry['int8_miou'])} ({'n/a' if change is None else f'{change:+.1f}'})")
    return "INT8 gates: " + ", ".join(parts) + " mIoU (change, points)"


# ------------------------------------------------------------------------------------------------------ report.md


def _percent(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}"


def _gate_cells(entry: dict, failed: str = "failed") -> list[str]:
    """verdict, agreement, PSNR, calibration, layers kept float: the gate table's cells for one artifact."""
    if not entry["passed"]:
        return [f"{failed}: {entry['error']}", "n/a", "n/a", "n/a", "n/a"]
    gate, calibration = entry["gate"], entry["calibration"]
    psnr = gate.get("psnr_db")
    psnr_text = "n/a" if gate.get("required_psnr_db") is None else ("inf" if psnr is None else f"{psnr:.1f} dB")
    what = "identical labels" if gate["task"] == "segment" else f"within {gate['tolerance']} grey levels"
    return [
        "passed" + (" (kept from a previous run)" if entry.get("kept_from_a_previous_run") else ""),
        f"{_percent(gate['fraction'], 2)}% {what} ({gate['images']} held-out images)",
        psnr_text,
        f"{calibration['method']}, {calibration['images']} images",
        f"{entry['float_layers']} of {entry['float_layers'] + entry['quantized_layers']}",
    ]


GATE_COLUMNS = ("artifact", "gate", "agreement", "PSNR", "calibration", "layers kept float")
MIOU_COLUMNS = ("arm", "FP32", "INT8", "change (points)")
FCN_COLUMNS = ("translator", "mIoU", "FWIoU", "pixel acc.", "mean acc.", "images")


def _gate_rows(section: dict[str, Any], failed: str = "failed") -> list[list[str]]:
    """One row per INT8 artifact (GATE_COLUMNS): the translator, then each arm's segmenter."""
    rows = [["translator", *_gate_cells(section["translator"], failed)]]
    rows += [[f"{ARM_TITLES[arm]} segmenter", *_gate_cells(e, failed)] for arm, e in section["segmenters"].items()]
    return rows


def _miou_rows(section: dict[str, Any]) -> list[list[str]]:
    """One row per arm (MIOU_COLUMNS): target-val mIoU (%) of its segmenter in FP32 and INT8."""
    rows = []
    for arm, entry in section["segmenters"].items():
        if entry["passed"]:
            change = entry["miou_change_points"]
            cells = [_percent(entry["int8_miou"]), "n/a" if change is None else f"{change:+.1f}"]
        else:
            cells = ["n/a (gate failed)", "n/a"]
        rows.append([ARM_TITLES[arm], _percent(entry["fp32_miou"]), *cells])
    return rows


def _fcn_rows(fcn: dict[str, Any]) -> list[list[str]]:
    """FCN_COLUMNS rows of the FP32 and INT8 translations' FCN-scores."""
    keys = ("mean_iou", "fw_iou", "pixel_accuracy", "mean_accuracy")
    return [[name.upper(), *(_percent(fcn[name][k]) for k in keys), str(fcn[name]["images_scored"])] for name in
            ("fp32", "int8")]  # fmt: skip


def _fcn_verdict(translator: dict[str, Any]) -> str | None:
    """Why the INT8 translation has no FCN-score, or None when it has one."""
    if not translator["passed"]:
        return "The INT8 translator failed its gate: no INT8 translation, no FCN-score."
    fcn = translator.get("fcn_score")
    return f"FCN-score of the INT8 translation: n/a: {fcn['reason']}." if fcn.get("segmenter") is None else None


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def int8_markdown(section: dict[str, Any]) -> list[str]:
    """report.md's INT8 section: the gates of every INT8 artifact, then the INT8 figures beside the FP32 ones."""
    translate, segment = GATES["translate"], GATES["segment"]
    translator = section["translator"]
    lines = [
        f"{HEADING} (--int8)",
        "",
        "INT8 ONNX (QDQ, as `export-trt --int8` writes it) of the adapted translator, calibrated on up to "
        f"{section['calibration_images']} source training images, and of each arm's segmenter, calibrated on up to "
        f"{section['calibration_images']} target training images (never val). Gates against the FP32 ONNX on "
        f"held-out images of the same data: translators >= {100 * translate['required']:.0f}% of pixels within "
        f"{translate['tolerance']} grey levels and PSNR >= {translate['psnr_db']:.0f} dB; segmenters >= "
        f"{100 * segment['required']:.0f}% identical labels. A failed gate writes no INT8 file, and the artifact "
        "gets no INT8 figure below.",
        "",
        *_markdown_table(GATE_COLUMNS, _gate_rows(section, failed="**failed**")),
        "",
        "Target-val mIoU (%) of each arm's segmenter, FP32 and INT8:",
        "",
        *_markdown_table(MIOU_COLUMNS, _miou_rows(section)),
        "",
    ]
    verdict = _fcn_verdict(translator)
    if verdict is not None:
        return [*lines, verdict, ""]
    return [
        *lines,
        f"FCN-score (%) of the source translated by each translator (into {TRANSLATED_INT8}/ for INT8), "
        "scored by the FP32 oracle segmenter against the source labels:",
        "",
        *_markdown_table(FCN_COLUMNS, _fcn_rows(translator["fcn_score"])),
        "",
    ]


def int8_html(section: dict[str, Any] | None) -> list[tuple[str, str]]:
    """index.html's INT8 tables ((heading, HTML table) pairs, as study_pages.write_study_index takes them); none
    for a study run without --int8."""
    if section is None:
        return []
    from uda_trt.benchmarks.html_index import html_table

    tables = [
        ("INT8 artifacts: gates against the FP32 ONNX", html_table(GATE_COLUMNS, _gate_rows(section))),
        ("Target-val mIoU (%), FP32 and INT8", html_table(MIOU_COLUMNS, _miou_rows(section))),
    ]
    if _fcn_verdict(section["translator"]) is None:
        rows = _fcn_rows(section["translator"]["fcn_score"])
        tables.append(("FCN-score (%) of the FP32 and INT8 translations", html_table(FCN_COLUMNS, rows)))
    return tables


def add_int8_markdown(report_md: Path, section: dict[str, Any]) -> None:
    """Insert the INT8 section into report.md before its stage times (at the end when it has none)."""
    lines = report_md.read_text().split("\n")
    at = lines.index("## Stage times (s)") if "## Stage times (s)" in lines else len(lines)
    atomic_write_text(report_md, "\n".join([*lines[:at], *int8_markdown(section), *lines[at:]]))
