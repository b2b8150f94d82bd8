"""The three trainers under torchrun: two processes on the CPU (gloo), each a real console script started by the
venv's torchrun, on tiny data and the smallest networks.

Each run must write checkpoints with exactly the keys a single-process run writes (no `module.` prefix, BatchNorm
names), which load and export; the two processes must see disjoint items, observed in the DEBUG line each process
logs per epoch with --verbose (`rank R of 2, epoch E: items [...]`) and checked against train.resume.shard of that
epoch's permutation; a run killed (its whole process group, torchrun included) after its first checkpoint resumes
and finishes, and one stopped by SIGTERM stops all its processes after the same iteration with the state saved. A joint
run is refused under torchrun before torch loads.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import nn

from helpers import BIN, KILLED, LogProgress, run_cli, run_until, write_gta5
from uda_trt.export.onnx_export import export_onnx
from uda_trt.train.checkpoints import (
    cpu_state_dict,
    describe_checkpoint,
    load_checkpoint_file,
    require_model_checkpoint,
    save_segmenter_checkpoint,
)
from uda_trt.train.cyclegan import CycleGANConfig, train_cyclegan
from uda_trt.train.distributed import Distributed, unwrap
from uda_trt.train.networks import NLayerDiscriminator, UnetGenerator
from uda_trt.train.pix2pix import Pix2PixConfig, train_pix2pix
from uda_trt.train.resume import EpochBatches, shard
from uda_trt.train.segmenter import SegmenterConfig, train_segmenter
from uda_trt.train.segmenters import NORMALIZATION, build_segmenter

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/test_train/conftest.py

TORCHRUN = ["torchrun", "--nproc_per_node", 2, "--standalone"]
CYCLEGAN_ITERATIONS = 10  # the stop lands at 2..4 and the kill 3 later: room for both before the end
SHARE_LINE = re.compile(r"rank (\d+) of 2, epoch (\d+): items \[([\d, ]*)\]")


def torchrun(command: str, *args: object) -> list:
    """A `run_cli` / `run_until` command line: torchrun starting two processes of console script `command`."""
    return [*TORCHRUN, BIN / command, *args]


def assert_disjoint_shares(stderr: str, size: int, seed: int) -> None:
    """Every epoch both processes logged: each took its shard of the epoch's permutation (size // 2 items), and no
    item went to both."""
    shares: dict[int, dict[int, list[int]]] = {}
    for rank, epoch, items in SHARE_LINE.findall(stderr):
        shares.setdefault(int(epoch), {})[int(rank)] = [int(i) for i in items.split(",")]
    both = {epoch: ranks for epoch, ranks in shares.items() if set(ranks) == {0, 1}}
    assert both, stderr[-3000:]
    for epoch, ranks in both.items():
        order = EpochBatches(size, 1, seed).epoch_order(epoch)
        assert ranks[0] == shard(order, 0, 2) and ranks[1] == shard(order, 1, 2), epoch
        assert len(ranks[0]) == size // 2 and not set(ranks[0]) & set(ranks[1]), epoch


def assert_weights_agreed(stderr: str, iterations: list[int]) -> None:
    """Rank 0 found the processes' weights identical at each of these saves (DDP kept them in step), and never not."""
    agreed = [int(n) for n in re.findall(r"iteration (\d+): weights identical in all 2 processes", stderr)]
    assert sorted(set(agreed)) == iterations and "hold different weights" not in stderr, stderr[-3000:]


def assert_same_keys(folder: Path, single: Path, names: list[str]) -> None:
    """The files `names` in `folder` hold exactly the state_dict keys, in order, of the same files of a
    single-process run in `single`."""
    for name in names:
        ours, theirs = (load_checkpoint_file(root / name) for root in (folder, single))
        ours, theirs = ours.get("state_dict", ours), theirs.get("state_dict", theirs)
        assert list(ours) == list(theirs), name


def parity_images() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.integers(0, 256, (32, 64, 3), dtype=np.uint8) for _ in range(2)]


# --- pure parts ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "world"), [(7, 2), (8, 2), (10, 3)])
def test_each_process_takes_a_disjoint_equal_share_of_every_epoch(size: int, world: int) -> None:
    for epoch in range(3):
        order = EpochBatches(size, 2, seed=4).epoch_order(epoch)
        shares = [EpochBatches(size, 2, 4, rank=r, world_size=world).rank_order(epoch) for r in range(world)]
        assert all(len(s) == size // world for s in shares)
        taken = [i for s in shares for i in s]
        assert len(set(taken)) == len(taken)  # no item twice
        assert set(taken) == set(order[: size - size % world])  # the remainder at the end of the order is dropped
        assert shares[1] == order[1 : size - size % world : world]
    plain = EpochBatches(size, 2, seed=4)
    assert plain.rank_order(2) == plain.epoch_order(2) and shard([3, 1, 2], 0, 1) == [3, 1, 2]
    # batches start where they would: global batch 5 is epoch 5 // per_epoch of this process's share
    sharded = EpochBatches(size, 1, 4, rank=1, world_size=world)
    first = next(iter(EpochBatches(size, 1, 4, start=5, rank=1, world_size=world)))
    epoch, at = divmod(5, sharded.per_epoch)
    assert first == [(epoch, sharded.rank_order(epoch)[at])]


def test_wrapped_and_sync_batchnorm_networks_save_the_single_process_keys(tmp_path: Path) -> None:
    """What rank 0 saves: the network inside DDP (`unwrap`), on GPUs with its BatchNorm layers made SyncBatchNorm
    (which DDP accepts on GPUs only, so the two are checked apart here). Both give the plain network's keys, version
    metadata and values, and the file is what a single process writes."""
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        for make in (
            lambda: UnetGenerator(3, 3, num_downs=5, ngf=4, norm="batch", use_dropout=True),
            lambda: NLayerDiscriminator(6, ndf=4, norm="batch"),
        ):
            torch.manual_seed(0)
            plain = cpu_state_dict(make())
            torch.manual_seed(0)
            synced = nn.SyncBatchNorm.convert_sync_batchnorm(make())
            assert any(isinstance(m, nn.SyncBatchNorm) for m in synced.modules())
            torch.manual_seed(0)
            wrapped = nn.parallel.DistributedDataParallel(make())
            assert next(iter(wrapped.state_dict())).startswith("module.")  # what unwrap is for
            for saved in (cpu_state_dict(synced), cpu_state_dict(unwrap(wrapped))):
                assert list(saved) == list(plain) and saved._metadata == plain._metadata
                assert all(torch.equal(saved[k], plain[k]) for k in plain)
                make().load_state_dict(saved, strict=True)
        torch.save(cpu_state_dict(unwrap(wrapped)), tmp_path / "latest_net_D.pth")
        assert describe_checkpoint(tmp_path / "latest_net_D.pth").kind == "discriminator"
    finally:
        dist.destroy_process_group()
    net = nn.Linear(2, 2)
    assert Distributed().wrap(net) is net and unwrap(net) is net  # a plain run trains the network itself


def test_joint_training_is_refused_under_torchrun_in_one_line(tmp_path: Path, user_error) -> None:
    env = {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}
    result = run_cli(
        "train-cyclegan", "--source", tmp_path / "a", "--target", tmp_path / "b", "--output", tmp_path / "run",
        "--joint-segmenter", "unet", env=env,
    )  # fmt: skip
    user_error(result, names="--joint-segmenter is not supported with distributed training")


# --- whole runs ----------------------------------------------------------------------------------------------------


def test_cyclegan_stopped_then_killed_resumes_and_finishes(tiny_gta5, tiny_cityscapes, tmp_path):
    """4 items (the larger domain), 2 per process, batch 1: 2 iterations per epoch, a save every 2. SIGTERM to
    torchrun after the first checkpoint (it passes the signal on: both processes stop after the same iteration and
    rank 0 saves), then SIGKILL to the whole job after the next checkpoint, then a resume to the end. Each run is long
    enough (about 0.13 s per iteration) for its signal to land before the end, which the test checks; states kept,
    so a late poll still finds them. With CyCADA's semantic loss, whose frozen segmenter each process holds."""
    out = tmp_path / "run"
    segmenter = tmp_path / "segmenter.pt"
    torch.manual_seed(5)
    segmenter_config = {"architecture": "lraspp_mobilenet_v3_large", "num_classes": 19, "scale": 1.0}
    save_segmenter_checkpoint(
        segmenter,
        {**segmenter_config, "normalization": NORMALIZATION},
        build_segmenter("lraspp_mobilenet_v3_large", num_classes=19).state_dict(),
    )
    shape = ["--ngf", 4, "--n-blocks", 1, "--ndf", 4, "--load-width", 40, "--crop-size", "32x24"]
    argv = torchrun(
        "train-cyclegan", "--source", tiny_gta5, "--target", tiny_cityscapes, "--output", out, *shape,
        "--iterations", CYCLEGAN_ITERATIONS, "--save-every", 2, "--sample-every", 8, "--log-every", 1, "--workers", 0,
        "--threads", 1, "--device", "cpu", "--seed", 3, "--keep-train-state", "--semantic-loss", segmenter, "-v",
    )  # fmt: skip
    log = tmp_path / "stderr.log"
    status = run_until(argv, lambda: (out / "latest_train_state.pt").exists(), log, signum=signal.SIGTERM)
    stopped = re.findall(r"interrupted: SIGTERM: training state saved at iteration (\d+)", log.read_text())
    assert status != 0 and len(stopped) == 1, log.read_text()[-3000:]  # one line, from rank 0
    assert torch.load(out / "latest_train_state.pt", weights_only=True)["iteration"] == int(stopped[0])
    assert "Traceback" not in log.read_text().split("interrupted: SIGTERM")[0]  # the processes stopped cleanly

    progress = LogProgress(out / "train.log", r"cyclegan: iteration (\d+):")
    killed = run_until([*argv, "--resume"], lambda: progress() >= int(stopped[0]) + 3, log, timeout=300, group=True)
    assert killed == KILLED and not (out / "finished.json").exists(), log.read_text()[-3000:]
    resumed = run_cli(*argv, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    at = re.search(rf"resuming \S+ at iteration (\d+) of {CYCLEGAN_ITERATIONS}", resumed.stderr)
    # the kill lands after the first save past the stop (its log line precedes the next save, which may be cut)
    assert at and int(stopped[0]) < int(at[1]) < CYCLEGAN_ITERATIONS, resumed.stderr[-3000:]
    assert json.loads((out / "finished.json").read_text())["iteration"] == CYCLEGAN_ITERATIONS
    assert resumed.stdout.count("CycleGAN written to") == 1  # rank 0 alone reports
    config = json.loads((out / "config.json").read_text())
    assert config["distributed"] == {"processes": 2} and config["config"]["batch_size"] == 1
    assert_disjoint_shares(log.read_text() + resumed.stderr, size=4, seed=3)
    assert_weights_agreed(resumed.stderr, list(range(int(at[1]) + 2, CYCLEGAN_ITERATIONS + 1, 2)))
    logged = re.findall(r"cyclegan: iteration (\d+):.* sem ([\d.]+), ", (out / "train.log").read_text())
    assert logged[-1][0] == str(CYCLEGAN_ITERATIONS) and float(logged[-1][1]) > 0

    single = CycleGANConfig(
        source=tiny_gta5, target=tiny_cityscapes, output=tmp_path / "single", ngf=4, n_blocks=1, ndf=4,
        load_width=40, crop_size=(32, 24), iterations=1, num_workers=0, threads=1, device="cpu",
    )  # fmt: skip
    train_cyclegan(single)
    assert_same_keys(out, single.output, [f"latest_net_{n}.pth" for n in ("G_A", "G_B", "D_A", "D_B")])
    assert require_model_checkpoint(out / "latest_net_G_A.pth").kind == "translator"
    export_onnx(out / "latest_net_G_A.pth", tmp_path / "onnx", (32, 24), parity_images=parity_images(), fp16=False)
    assert (tmp_path / "onnx" / "latest_net_G_A.onnx").exists()


def test_pix2pix_under_two_processes_writes_single_process_checkpoints(paired_layouts, tmp_path):
    """4 pairs, 2 per process, batch 1; U-Net and PatchGAN with batch norm (plain BatchNorm on the CPU)."""
    out = tmp_path / "run"
    shape = ["--ngf", 4, "--ndf", 4, "--num-downs", 5, "--load-size", "36x36", "--crop-size", "32x32"]
    result = run_cli(
        *torchrun(
            "train-pix2pix", "--data", paired_layouts["cityscapes"], "--output", out, *shape, "--iterations", 3,
            "--save-every", 2, "--sample-every", 3, "--log-every", 1, "--workers", 0, "--threads", 1,
            "--device", "cpu", "--seed", 2, "-v",
        )
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in out.glob("*.pth")) == sorted(
        ["latest_net_G.pth", "latest_net_D.pth", "2_net_G.pth", "2_net_D.pth"]
    )
    assert_disjoint_shares(result.stderr, size=4, seed=2)
    assert_weights_agreed(result.stderr, [2, 3])

    single = Pix2PixConfig(
        output=tmp_path / "single", data=paired_layouts["cityscapes"], ngf=4, ndf=4, num_downs=5, load_size=(36, 36),
        crop_size=(32, 32), iterations=1, num_workers=0, threads=1, device="cpu",
    )  # fmt: skip
    train_pix2pix(single)
    assert_same_keys(out, single.output, ["latest_net_G.pth", "latest_net_D.pth"])
    info = require_model_checkpoint(out / "latest_net_G.pth")
    assert (info.architecture, info.args["norm"]) == ("unet_generator", "batch")
    export_onnx(out / "latest_net_G.pth", tmp_path / "onnx", (32, 32), parity_images=parity_images(), fp16=False)
    assert (tmp_path / "onnx" / "latest_net_G.onnx").exists()


def test_segmenter_under_two_processes_writes_single_process_checkpoints(tmp_path):
    """8 labelled images: 2 held out (scored by rank 0), 6 to train on, 3 per process, batch 2."""
    data = write_gta5(tmp_path / "gta5", count=8, size=(48, 27), seed=6)
    out = tmp_path / "run"
    settings = ["--scale", 0.5, "--crop-size", "16x12", "--batch-size", 2, "--optimizer", "adamw", "--lr", 1e-3]
    result = run_cli(
        *torchrun(
            "train-segmenter", "--data", data, "--output", out, *settings, "--iterations", 3, "--val-fraction",
            0.25, "--val-every", 3, "--precise-bn-batches", 1, "--workers", 0, "--device", "cpu", "--seed", 1, "-v",
        )
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == str(out / "best.pt")  # printed once, by rank 0
    assert_disjoint_shares(result.stderr, size=6, seed=1)
    assert_weights_agreed(result.stderr, [3])
    history = json.loads((out / "history.json").read_text())
    assert [v["iteration"] for v in history["validations"]] == [3] and history["heldout_samples"] == 2

    single = SegmenterConfig(
        data_root=data, output_dir=tmp_path / "single", scale=0.5, crop_size=(16, 12), batch_size=2, iterations=1,
        optimizer="adamw", lr=1e-3, val_fraction=0.25, precise_bn_batches=1, num_workers=0, device="cpu",
    )  # fmt: skip
    train_segmenter(single)
    assert_same_keys(out, single.output_dir, ["best.pt", "last.pt"])
    assert require_model_checkpoint(out / "best.pt").kind == "segmenter"
    export_onnx(out / "best.pt", tmp_path / "onnx", parity_images=parity_images(), fp16=False)
    assert (tmp_path / "onnx" / "best.onnx").exists()
