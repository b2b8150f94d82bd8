"""Resume building blocks and in-process resume runs: the data order as a pure function of (seed, epoch), keyed item
RNGs, two generations of training state with fallback, and interrupted-then-resumed runs of both trainers ending
bit-identical to uninterrupted ones (the SIGKILL versions, through the CLIs, are the test_*_kill_resume.py files)."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import uda_trt.train.cyclegan as cyclegan
import uda_trt.train.gan_training as gan_training
import uda_trt.train.segmenter as segmenter
from helpers import pth_bytes, write_gta5
from uda_trt.runtime.errors import UserError
from uda_trt.train.checkpoints import require_model_checkpoint
from uda_trt.train.cyclegan import CycleGANConfig, train_cyclegan
from uda_trt.train.resume import (
    LATEST_STATE,
    PREVIOUS_STATE,
    EpochBatches,
    derived_seed,
    load_train_state,
    save_train_state,
)
from uda_trt.train.segmenter import SegmenterConfig, train_segmenter
from uda_trt.train.unpaired_data import unpaired_dataset

NETS = [f"latest_net_{n}.pth" for n in ("G_A", "G_B", "D_A", "D_B")]


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: the machine's two cores are shared, and tiny models gain nothing from more."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Interrupted(Exception):
    """Stands in for a kill in the in-process runs."""


def interrupt_after(monkeypatch, module, name: str, calls: int) -> None:
    """Make `module.name` raise Interrupted on its call number `calls + 1` (the real function runs before that)."""
    real, count = getattr(module, name), [0]

    def wrapper(*args, **kwargs):
        count[0] += 1
        if count[0] > calls:
            raise Interrupted(f"interrupted before call {count[0]} of {name}")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


# --- data order ----------------------------------------------------------------------------------------------------


def take(sampler: EpochBatches, count: int) -> list[list[tuple[int, int]]]:
    batches = iter(sampler)
    return [next(batches) for _ in range(count)]


def test_epochs_are_seeded_permutations_cut_into_fixed_batches():
    batches = take(EpochBatches(7, 3, seed=1), 9)
    assert [len(b) for b in batches] == [3, 3, 1] * 3  # the last, short batch is kept (reference CycleGAN)
    for epoch in range(3):
        keys = [key for batch in batches[3 * epoch : 3 * epoch + 3] for key in batch]
        assert {e for e, _ in keys} == {epoch} and sorted(i for _, i in keys) == list(range(7))
    orders = [[i for b in batches[3 * e : 3 * e + 3] for _, i in b] for e in range(3)]
    assert len({tuple(o) for o in orders}) == 3  # each epoch has its own order
    assert take(EpochBatches(7, 3, seed=1), 9) == batches  # ... a pure function of (seed, epoch)
    assert take(EpochBatches(7, 3, seed=2), 3) != batches[:3]
    dropped = take(EpochBatches(7, 3, seed=1, drop_last=True), 4)
    assert [len(b) for b in dropped] == [3, 3, 3, 3] and dropped[0] == batches[0]


def test_starting_at_batch_k_continues_the_same_stream_across_epochs():
    full = take(EpochBatches(7, 3, seed=4), 12)
    for start in range(10):
        assert take(EpochBatches(7, 3, seed=4, start=start), 12 - start) == full[start:], start


class CountingItems(Dataset):
    def __init__(self) -> None:
        self.loaded: list = []

    def __len__(self) -> int:
        return 10

    def __getitem__(self, key):
        self.loaded.append(key)
        return torch.tensor(key[1])


def test_a_resumed_loader_skips_earlier_batches_without_loading_them():
    dataset = CountingItems()
    sampler = EpochBatches(10, 2, seed=0, start=7)  # 5 batches per epoch: epoch 1, its third batch
    first = next(iter(DataLoader(dataset, batch_sampler=sampler)))
    expected = take(EpochBatches(10, 2, seed=0), 8)[7]
    assert dataset.loaded == expected and {e for e, _ in expected} == {1}
    assert first.tolist() == [i for _, i in expected]


def test_items_are_the_same_whichever_process_loads_them(tiny_gta5: Path, tiny_cityscapes: Path):
    dataset = unpaired_dataset(tiny_gta5, tiny_cityscapes, 40, (32, 24), seed=3)
    runs = []
    for workers in (0, 1):
        loader = DataLoader(dataset, batch_sampler=EpochBatches(len(dataset), 2, 3), num_workers=workers)
        batches = iter(loader)
        runs.append([next(batches) for _ in range(5)])
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a["A"], b["A"]) and torch.equal(a["B"], b["B"]) and a["B_path"] == b["B_path"]
    other = unpaired_dataset(tiny_gta5, tiny_cityscapes, 40, (32, 24), seed=4)
    assert not torch.equal(other[(0, 1)]["A"], dataset[(0, 1)]["A"])  # the seed chooses the crops


def test_derived_seeds_are_stable_and_distinct():
    assert (
        derived_seed(0, "epoch", 1) == derived_seed(0, "epoch", 1) == 1583786290671302529
    )  # pinned: resumes of older runs rely on it
    assert len({derived_seed(s, "epoch", e) for s in range(-2, 3) for e in range(5)}) == 25
    assert all(0 <= derived_seed(s) < 2**63 for s in (-(2**70), 0, 2**70))


# --- state files ---------------------------------------------------------------------------------------------------

FMT = "test-state"


def test_state_files_keep_the_previous_generation_and_fall_back_to_it(tmp_path, caplog):
    assert load_train_state(tmp_path, FMT, ("iteration",)) is None  # nothing to resume: a new run
    save_train_state({"format": FMT, "iteration": 3}, tmp_path)
    assert not (tmp_path / PREVIOUS_STATE).exists()
    save_train_state({"format": FMT, "iteration": 6}, tmp_path)
    assert torch.load(tmp_path / PREVIOUS_STATE, weights_only=True)["iteration"] == 3
    assert load_train_state(tmp_path, FMT, ("iteration",))["iteration"] == 6

    latest = tmp_path / LATEST_STATE
    latest.write_bytes(latest.read_bytes()[:100])  # truncated
    with caplog.at_level(logging.WARNING):
        state = load_train_state(tmp_path, FMT, ("iteration",))
    assert state["iteration"] == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(latest) in warnings[0] and str(tmp_path / PREVIOUS_STATE) in warnings[0]
    assert not latest.exists() and (tmp_path / f"{LATEST_STATE}.damaged").exists()
    save_train_state({"format": FMT, "iteration": 4}, tmp_path)  # the damaged file is not rotated over previous
    assert torch.load(tmp_path / PREVIOUS_STATE, weights_only=True)["iteration"] == 3

    for garbage in (b"", b"\x00garbage" * 40):
        latest.write_bytes(garbage)
        (tmp_path / PREVIOUS_STATE).write_bytes(garbage)
        with pytest.raises(UserError, match="no training state to resume from") as error:
            load_train_state(tmp_path, FMT, ("iteration",))
        assert str(latest) in str(error.value) and PREVIOUS_STATE in str(error.value)
    save_train_state({"format": "other", "iteration": 1}, tmp_path)  # a file of another kind is not usable either
    torch.save({"format": FMT}, tmp_path / PREVIOUS_STATE)  # nor one that lacks a key
    with pytest.raises(UserError, match="not a test-state file.*no iteration"):
        load_train_state(tmp_path, FMT, ("iteration",))


def test_a_save_renames_the_latest_state_to_previous_and_copies_nothing(tmp_path, monkeypatch):
    """Each save writes one state: the old latest becomes the previous by a rename (same file), also where the file
    system has no hard links (simulated; the old rotation then copied the whole state, ~320 MB for resnet50)."""

    def no_hard_links(*args, **kwargs):
        raise OSError("hard links not supported")

    monkeypatch.setattr("os.link", no_hard_links)
    save_train_state({"format": FMT, "iteration": 3}, tmp_path)
    first = (tmp_path / LATEST_STATE).stat().st_ino
    save_train_state({"format": FMT, "iteration": 6}, tmp_path)
    assert (tmp_path / PREVIOUS_STATE).stat().st_ino == first  # the same file, renamed, not a copy
    assert torch.load(tmp_path / PREVIOUS_STATE, weights_only=True)["iteration"] == 3
    assert torch.load(tmp_path / LATEST_STATE, weights_only=True)["iteration"] == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == [LATEST_STATE, PREVIOUS_STATE]  # no partial left


# --- CycleGAN ------------------------------------------------------------------------------------------------------


def cyclegan_config(source: Path, target: Path, output: Path) -> CycleGANConfig:
    """4 B images, 3 A images, batch 2: 2 batches per epoch, so 9 iterations cross 4 epoch boundaries."""
    return CycleGANConfig(
        source=source, target=target, output=output, ngf=4, n_blocks=1, ndf=4, load_width=40, crop_size=(32, 24),
        batch_size=2, iterations=9, decay_iterations=4, pool_size=3, num_workers=0, threads=1, device="cpu",
        sample_every=4, save_every=2, log_every=1,
    )  # fmt: skip


@pytest.fixture
def cyclegan_reference(tiny_gta5: Path, tiny_cityscapes: Path, tmp_path: Path) -> dict[str, bytes]:
    """The files of an uninterrupted run, trained in the folder the resumed runs use (configs record it), with its
    training states kept so that they are compared too."""
    run = train_cyclegan(cyclegan_config(tiny_gta5, tiny_cityscapes, tmp_path / "run"), keep_train_state=True)
    files = pth_bytes(run)
    run.rename(tmp_path / "reference")
    return files


def test_cyclegan_interrupted_twice_resumes_bit_identical(
    tiny_gta5: Path, tiny_cityscapes: Path, tmp_path: Path, cyclegan_reference, monkeypatch
):
    config = cyclegan_config(tiny_gta5, tiny_cityscapes, tmp_path / "run")
    for steps in (3, 4):  # between saves (iteration 3 is lost and redone), then mid-epoch after a resume
        interrupt_after(monkeypatch, cyclegan, "train_step", steps)
        with pytest.raises(Interrupted):
            train_cyclegan(config, resume=True)
        monkeypatch.undo()
    train_cyclegan(config, resume=True, keep_train_state=True)
    assert set(NETS) <= set(cyclegan_reference)
    assert pth_bytes(config.output) == cyclegan_reference  # every net, numbered net and both states, byte for byte


def test_cyclegan_resumes_from_the_previous_state_when_the_latest_is_damaged(
    tiny_gta5: Path, tiny_cityscapes: Path, tmp_path: Path, cyclegan_reference, monkeypatch
):
    config = cyclegan_config(tiny_gta5, tiny_cityscapes, tmp_path / "run")
    interrupt_after(monkeypatch, cyclegan, "train_step", 7)  # states of iterations 4 (previous) and 6 (latest)
    with pytest.raises(Interrupted):
        train_cyclegan(config, resume=True)
    monkeypatch.undo()
    latest = config.output / LATEST_STATE
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])
    train_cyclegan(config, resume=True, keep_train_state=True)
    # from iteration 4: the saves at 6 (no rotation: the damaged file was set aside), 8 and 9 give every file back
    assert pth_bytes(config.output) == cyclegan_reference
    assert (config.output / f"{LATEST_STATE}.damaged").exists()


def test_cyclegan_killed_while_finishing_resumes_to_the_same_networks_and_no_state(
    tiny_gta5: Path, tiny_cityscapes: Path, tmp_path: Path, cyclegan_reference, monkeypatch
):
    """Without --keep-train-state the last iteration saves no state: a kill after its network files and before
    finished.json resumes from the last periodic state (iteration 8) and redoes iteration 9 to the same bytes."""
    config = cyclegan_config(tiny_gta5, tiny_cityscapes, tmp_path / "run")
    interrupt_after(monkeypatch, gan_training, "write_finished", 0)  # the trainers' shared driver
    with pytest.raises(Interrupted):
        train_cyclegan(config)
    monkeypatch.undo()
    assert torch.load(config.output / LATEST_STATE, weights_only=True)["iteration"] == 8
    assert not (config.output / "finished.json").exists()
    train_cyclegan(config, resume=True)
    nets = {name: data for name, data in cyclegan_reference.items() if name.endswith(".pth")}
    assert pth_bytes(config.output) == nets  # every network file, and no training state left


# --- segmenter -----------------------------------------------------------------------------------------------------


def segmenter_config(data: Path, output: Path) -> SegmenterConfig:
    """6 training images in batches of 2 (3 per epoch), 2 precise-BN batches per score: 8 iterations draw 12 batches."""
    return SegmenterConfig(
        data_root=data, output_dir=output, scale=1.0, crop_size=(32, 24), batch_size=2, iterations=8,
        optimizer="adamw", lr=1e-3, val_fraction=0.15, val_every=4, save_every=3, precise_bn_batches=2, seed=1,
        num_workers=0, device="cpu",
    )  # fmt: skip


SEGMENTER_FILES = ("best.pt", "last.pt")


def test_segmenter_interrupted_and_damaged_resumes_bit_identical(tmp_path: Path, monkeypatch):
    data = write_gta5(tmp_path / "gta5", count=7, size=(48, 27))
    config = segmenter_config(data, tmp_path / "run")
    train_segmenter(config)
    reference = {name: (config.output_dir / name).read_bytes() for name in SEGMENTER_FILES}
    history = (config.output_dir / "history.json").read_text()
    (config.output_dir).rename(tmp_path / "reference")

    # between saves (iterations 3 and 4: iteration 5 is lost), after the first score, then a damaged latest state
    for steps in (5, 1, 2):
        interrupt_after(monkeypatch, segmenter, "train_step", steps)
        with pytest.raises(Interrupted):
            train_segmenter(config, resume=True)
        monkeypatch.undo()
    latest = config.output_dir / LATEST_STATE
    assert torch.load(latest, weights_only=True)["iteration"] == 6
    latest.write_bytes(b"\x00" * 64)
    train_segmenter(config, resume=True, keep_train_state=True)
    for name in SEGMENTER_FILES:
        assert (config.output_dir / name).read_bytes() == reference[name], name
    timing = ("seconds", "train_seconds", "train_images_per_second")
    strip = segmenter_history_without_timings
    assert strip((config.output_dir / "history.json").read_text(), timing) == strip(history, timing)

    with pytest.raises(UserError, match="train-segmenter --resume"):  # a training state is not a model
        require_model_checkpoint(latest)
    with pytest.raises(UserError, match="--resume"):  # rerunning without --resume never overwrites a run
        train_segmenter(config)
    with pytest.raises(UserError, match="used --batch-size 2, this one 3"):
        train_segmenter(dataclasses.replace(config, batch_size=3), resume=True)
    with pytest.raises(UserError, match="used --crop-size 32x24, this one full;"):  # as typed, not [32, 24] / None
        train_segmenter(dataclasses.replace(config, crop_size=None), resume=True)


def segmenter_history_without_timings(text: str, timing: tuple[str, ...]) -> dict:
    """history.json without its wall-clock fields."""
    history = json.loads(text)
    for entry in [history, *history["validations"]]:
        for key in timing:
            entry.pop(key, None)
    return history
