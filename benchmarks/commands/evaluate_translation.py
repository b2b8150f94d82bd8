"""`evaluate-translation`: FID, KID and Inception Score of translated images, and their FCN-score."""

from __future__ import annotations

from pathlib import Path

import click

from uda_trt.benchmarks import frechet
from uda_trt.runtime.jobs.cli import setup_logging
from uda_trt.runtime.runners import BACKENDS

_DIR = click.Path(path_type=Path, file_okay=False)
_FILE = click.Path(path_type=Path, dir_okay=False)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--fake",
    type=_DIR,
    required=True,
    help="The translated images: an image folder (recursive) or a batch-translate output root (ROOT/images).",
)
@click.option("--real", type=_DIR, help="Real target-domain images (image folder) for FID and KID; IS is of --fake.")
@click.option(
    "--inception-weights",
    type=_FILE,
    help="The FID Inception weights (pt_inception-2015-12-05-6726825d.pth or "
    "weights-inception-2015-12-05-6726825d.pth) [default: looked up in the torch hub cache].",
)
@click.option(
    "--segmenter",
    type=_FILE,
    help="FCN-score: a segmenter artifact (STEM.onnx / .engine) trained on the target domain.",
)
@click.option(
    "--labels",
    type=_DIR,
    help="FCN-score: labels of the source images, same names as the translations [default: labels/ beside a "
    "batch-translate output's images/]; a Cityscapes gtFine/SPLIT folder works as it is.",
)
@click.option("--id-type", type=click.Choice(["labelid", "trainid"]), default="labelid", help="What --labels hold.")
@click.option("--output", type=_DIR, required=True, help="Folder for metrics.json and metrics.md.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, help="Images per Inception batch.")
@click.option(
    "--features",
    type=click.Choice(["torch", "onnxruntime"]),
    default="torch",
    help="Inception features from PyTorch (torch-fidelity's network, on --device), or from ONNX Runtime on its ONNX "
    "export (CUDA when present; exported once into OUTPUT, features within 1e-4 of PyTorch's).",
)
@click.option(
    "--device", default="cpu", help="Torch device for the Inception network (cpu, cuda) with --features torch."
)
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="auto",
    help="FCN-score segmenter backend.",
)
@click.option("--kid-subsets", type=click.IntRange(min=1), default=frechet.KID_SUBSETS, help="KID: random subsets.")
@click.option(
    "--kid-subset-size",
    type=click.IntRange(min=2),
    default=frechet.KID_SUBSET_SIZE,
    help="KID: features per subset (shrunk to the smaller set when larger).",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(
    fake: Path,
    real: Path | None,
    inception_weights: Path | None,
    segmenter: Path | None,
    labels: Path | None,
    id_type: str,
    output: Path,
    batch_size: int,
    features: str,
    device: str,
    backend: str,
    kid_subsets: int,
    kid_subset_size: int,
    verbose: bool,
) -> None:
    """Score translations: FID and KID against --real and the Inception Score (Inception-v3 features, computed as
    torch-fidelity computes them, from a local weights file), and/or the FCN-score (a target-domain segmenter's
    PA, MPA, mIoU and FWIoU on the translations, against the source labels). Writes OUTPUT/metrics.{json,md}."""
    setup_logging(verbose)
    from uda_trt.benchmarks.translation_quality import evaluate_translation

    result = evaluate_translation(
        output,
        fake=fake,
        real=real,
        inception_weights=inception_weights,
        labels=labels,
        segmenter=segmenter,
        id_type=id_type,
        batch_size=batch_size,
        device=device,
        features=features,
        backend=backend,
        kid_subsets=kid_subsets,
        kid_subset_size=kid_subset_size,
    )
    if "fid" in result:
        click.echo(
            f"FID {result['fid']:.4f}, KID {result['kid_mean']:.6f} +- {result['kid_std']:.6f}, "
            f"IS {result['inception_score_mean']:.4f} +- {result['inception_score_std']:.4f}"
        )
    if "fcn_score" in result:
        fcn = result["fcn_score"]
        click.echo(f"FCN-score mIoU {fcn['mean_iou']}, PA {fcn['pixel_accuracy']} ({fcn['images_scored']} images)")
    click.echo(f"wrote {Path(output) / 'metrics.json'}")


if __name__ == "__main__":
    main()
