"""A finished run keeps its results, not its training states (train.resume, "Finished runs").

A training state is two to three times the model (~320 MB for deeplabv3_resnet50), two generations of it stayed in
every finished run. Now a finished run removes both and leaves finished.json; --resume of it returns at once without
touching a file (run-uda resumes every stage of a study this way); --keep-train-state keeps the states; a changed
setting or a longer budget is refused in one line naming the flag as typed.

The finished runs are made once per test session (helpers.shared.run_once: the tests only read them, and may run in
two pytest-xdist workers).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import assert_user_error, run_cli, watch_untouched, write_cityscapes, write_gta5
from helpers.shared import run_once

STATES = {"latest_train_state.pt", "previous_train_state.pt"}


def cyclegan_argv(source: Path, target: Path, out: Path) -> list:
    return [
        "train-cyclegan", "--source", source, "--target", target, "--output", out, "--ngf", 4, "--n-blocks", 1,
        "--ndf", 4, "--load-width", 40, "--crop-size", "32x24", "--iterations", 4, "--save-every", 2,
        "--sample-every", 4, "--log-every", 2, "--workers", 0, "--threads", 1, "--device", "cpu",
    ]  # fmt: skip


def segmenter_argv(data: Path, out: Path) -> list:
    return [
        "train-segmenter", "--data", data, "--output", out, "--scale", 1, "--crop-size", "32x24", "--batch-size", 2,
        "--iterations", 4, "--optimizer", "adamw", "--lr", "1e-3", "--val-fraction", 0.25, "--val-every", 2,
        "--precise-bn-batches", 1, "--save-every", 1, "--log-every", 2, "--workers", 0, "--device", "cpu",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory) -> dict[str, tuple[list[str], Path]]:
    """One finished tiny run of each trainer through its command: name -> (argv, output folder); never modified."""

    def make(root: Path) -> dict[str, list[str]]:
        source = write_gta5(root / "gta5", count=6, size=(48, 27), seed=1)
        target = root / "cityscapes"
        write_cityscapes(target, cities={"aachen": 2}, size=(64, 32), seed=2, split="train")
        runs = {
            "cyclegan": cyclegan_argv(source, target, root / "cyclegan"),
            "segmenter": segmenter_argv(source, root / "segmenter"),
        }
        for argv in runs.values():
            done = run_cli(*argv)
            assert done.returncode == 0, done.stderr[-3000:]
        return {name: [str(arg) for arg in argv] for name, argv in runs.items()}

    _, runs = run_once(tmp_path_factory, "finished-runs", make)
    return {name: (argv, Path(argv[argv.index("--output") + 1])) for name, argv in runs.items()}


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["cyclegan", "segmenter"])
def test_a_finished_run_keeps_no_training_state_and_resumes_at_once(finished_runs, trainer, tmp_path):
    argv, out = finished_runs[trainer]
    names = {p.name for p in out.iterdir()}
    assert not names & STATES, names  # saved during the run (--save-every 2 / 1), removed at its end
    assert json.loads((out / "finished.json").read_text())["iteration"] == 4
    untouched = watch_untouched(out.parent, tmp_path)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".pt", ".pth")}

    again = run_cli(*argv, "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{out}: already trained to iteration 4; nothing to do" in again.stderr
    untouched()  # no file written, not even config.json or train.log
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".pt", ".pth")} == before
    assert_user_error(run_cli(*argv), names="--resume")  # without --resume a finished run is not overwritten


@pytest.mark.slow
def test_a_finished_run_refuses_a_changed_setting_or_a_longer_budget(finished_runs):
    argv, out = finished_runs["segmenter"]
    changed = [*argv, "--resume"]
    changed[changed.index("--crop-size") + 1] = "full"
    assert_user_error(run_cli(*changed), names="--crop-size 32x24, this one full")
    longer = [*argv, "--resume"]
    longer[longer.index("--iterations") + 1] = "6"
    assert_user_error(run_cli(*longer), names="--keep-train-state")


def test_keep_train_state_keeps_both_states_and_lets_a_run_go_further(tmp_path):
    data = write_gta5(tmp_path / "gta5", count=6, size=(48, 27), seed=1)
    argv = segmenter_argv(data, tmp_path / "run")
    done = run_cli(*argv, "--keep-train-state")
    assert done.returncode == 0, done.stderr[-3000:]
    assert {p.name for p in (tmp_path / "run").iterdir()} >= STATES
    argv[argv.index("--iterations") + 1] = "5"
    further = run_cli(*argv, "--resume")
    assert further.returncode == 0, further.stderr[-3000:]
    assert f"resuming {tmp_path / 'run'} at iteration 4 of 5" in further.stderr
    assert json.loads((tmp_path / "run" / "finished.json").read_text())["iteration"] == 5
    assert not STATES & {p.name for p in (tmp_path / "run").iterdir()}  # this time not kept


def test_the_training_functions_return_at_once_for_a_finished_run(tiny_gta5, tiny_cityscapes, tmp_path):
    """What run-uda calls: train_cyclegan / train_segmenter(config, resume=True) on a finished run write nothing."""
    import torch

    from uda_trt.train.cyclegan import CycleGANConfig, train_cyclegan
    from uda_trt.train.segmenter import SegmenterConfig, train_segmenter

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cyclegan = CycleGANConfig(
            source=tiny_gta5, target=tiny_cityscapes, output=tmp_path / "cyclegan", ngf=4, n_blocks=1, ndf=4,
            load_width=40, crop_size=(32, 24), iterations=2, num_workers=0, threads=1, device="cpu", save_every=1,
        )  # fmt: skip
        segmenter = SegmenterConfig(
            data_root=tiny_gta5, output_dir=tmp_path / "segmenter", scale=1.0, crop_size=(32, 24), batch_size=2,
            iterations=2, optimizer="adamw", lr=1e-3, val_fraction=0.34, val_every=2, precise_bn_batches=1,
            save_every=1, num_workers=0, device="cpu",
        )  # fmt: skip
        finished = [train_cyclegan(cyclegan), train_segmenter(segmenter)]
        for out in (cyclegan.output, segmenter.output_dir):
            assert not STATES & {p.name for p in out.iterdir()} and (out / "finished.json").exists()
        untouched = watch_untouched(tmp_path, tmp_path / "none")
        assert [train_cyclegan(cyclegan, resume=True), train_segmenter(segmenter, resume=True)] == finished
        untouched()
    finally:
        torch.set_num_threads(threads)
