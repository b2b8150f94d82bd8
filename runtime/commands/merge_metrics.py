"""`merge-metrics`: the metrics of a whole split from the metrics of its `evaluate-seg --shard I/N` runs.

Writes OUT/metrics.json and metrics.md as evaluate-seg does (docs/contracts.md, "merge-metrics"), from the summed
confusion matrices. Exit 0 when at least one image was scored, 1 when none was, 2 when the shards do not belong
together or one is missing (one line naming the folder or the shard).
"""

from __future__ import annotations

from pathlib import Path

import click

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.cli import setup_logging


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.argument("shard_dirs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="SHARD_DIR...")
@click.option(
    "--output",
    "output_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for the merged metrics.json and metrics.md (not one of the shards' folders).",
)
@click.option(
    "--allow-missing",
    is_flag=True,
    help="Merge the shards given even when some of the N are missing (the metrics then cover fewer images; "
    "metrics.json lists the missing shards). Without it a missing shard is refused.",
)
@click.option("--figures/--no-figures", default=True, help="Also write OUT/confusion.png (row-normalised).")
def main(shard_dirs: tuple[Path, ...], output_dir: Path, allow_missing: bool, figures: bool) -> None:
    """Merge the metrics of evaluate-seg shards: SHARD_DIR... are the --output folders of `evaluate-seg --shard I/N`
    runs of one evaluation (same model or predictions, split, classes and N; each shard once). Their confusion
    matrices are summed and every score computed from the sum, so the result equals an unsharded run's.
    """
    from uda_trt.runtime.shard_metrics import check_together, merge_shards, read_shard

    setup_logging()
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"--output: {output_dir} exists and is not a folder")
    shards = [read_shard(folder) for folder in shard_dirs]
    missing = check_together(shards, allow_missing)
    for shard in shards:
        if output_dir.resolve() == shard.folder.resolve():
            raise UserError(f"--output: {output_dir} is shard {shard.label}'s folder; choose another folder")
    try:
        result = merge_shards(shards, output_dir, missing, figures)
    except OSError as exc:
        raise click.ClickException(f"{exc.filename or output_dir}: {exc.strerror or exc}") from exc
    scored, skipped = result["images_scored"], result["images_skipped"]
    if scored == 0:
        raise click.ClickException(f"no image was scored in these shards ({skipped} skipped)")
    miou = result["mean_iou"]
    click.echo(
        f"mIoU {'n/a' if miou is None else f'{100 * miou:.2f}%'} over {scored} image(s) from {len(shards)} "
        f"shard(s), {skipped} skipped -> {output_dir / 'metrics.json'}"
    )


if __name__ == "__main__":
    main()
