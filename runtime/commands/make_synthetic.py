"""`make-synthetic`: write a GTA5-like source and a Cityscapes-like target dataset (runtime.synthetic)."""

from __future__ import annotations

from pathlib import Path

import click

from uda_trt.runtime.jobs.cli import SIZE, fold_renamed, renamed_option, setup_logging


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@renamed_option(
    "--output",
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Output folder (new, empty, or a previous make-synthetic output).",
)
@click.option(
    "--gta5-count", default=600, show_default=True, type=click.IntRange(min=0), help="Source images (GTA5 layout)."
)
@click.option(
    "--cityscapes-train", default=600, show_default=True, type=click.IntRange(min=0), help="Target training images."
)
@click.option(
    "--cityscapes-val", default=100, show_default=True, type=click.IntRange(min=0), help="Target validation images."
)
@click.option(
    "--preset",
    "--size-preset",
    "preset",
    default="demo",
    show_default=True,
    type=click.Choice(["demo", "full"]),
    help="demo: 160x88 / 160x80; full: 1914x1052 / 2048x1024.",
)
@click.option("--gta5-size", type=SIZE, default=None, help="Override the source size, WIDTHxHEIGHT.")
@click.option("--cityscapes-size", type=SIZE, default=None, help="Override the target size, WIDTHxHEIGHT.")
@click.option(
    "--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Same seed -> byte-identical files."
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(min=1),
    help="Processes [default: every CPU this process may use, at most 8].",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace the datasets of a previous make-synthetic output made with other options (default: refuse).",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool, **options) -> None:
    """Write synthetic GTA5-like (OUT/gta5) and Cityscapes-like (OUT/cityscapes) street-scene datasets."""
    from uda_trt.runtime.jobs.interrupts import JobInterrupted, exit_code_of, stop_on_signals
    from uda_trt.runtime.synthetic import write_synthetic_datasets

    setup_logging(verbose)
    out = fold_renamed(options)["out"]
    try:
        with stop_on_signals():
            manifest = write_synthetic_datasets(**options)
    except KeyboardInterrupt as exc:
        raise JobInterrupted(
            f"the images written so far are kept in {out}; rerun the same command to complete the data",
            exit_code_of(exc),
        ) from None
    click.echo(
        f"wrote {manifest['written']} of {manifest['images']} images to {out} in {manifest['seconds']:.1f} s", err=True
    )


if __name__ == "__main__":
    main()
