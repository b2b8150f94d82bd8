"""CyCADA's semantic-consistency loss in train-cyclegan, on tiny real files, a tiny CycleGAN and a real (untrained)
LR-ASPP segmenter checkpoint: the term reaches the generators and leaves the frozen segmenter as it was; weight 0 is
the plain run; a resumed run ends with the bytes of an uninterrupted one; a changed setting or a file that is not a
segmenter is refused in one line."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import uda_trt.train.cyclegan as cyclegan
from helpers import pth_bytes, run_cli
from uda_trt.runtime.errors import UserError
from uda_trt.train.checkpoints import save_generator, save_segmenter_checkpoint
from uda_trt.train.commands import train_cyclegan as command
from uda_trt.train.cyclegan import (
    LOSS_NAMES,
    CycleGANConfig,
    ImagePool,
    build_models,
    seed_everything,
    train_cyclegan,
    train_step,
)
from uda_trt.train.segmentation_data import to_tensor as segmenter_tensor
from uda_trt.train.segmenters import NORMALIZATION, build_segmenter
from uda_trt.train.semantic_consistency import DEFAULT_WEIGHT, SemanticConsistency, open_semantic_source
from uda_trt.train.unpaired_data import to_tensor as cyclegan_tensor

pytestmark = pytest.mark.usefixtures("one_thread")

NETS = [f"latest_net_{n}.pth" for n in ("G_A", "G_B", "D_A", "D_B")]


@pytest.fixture(scope="module")
def segmenter_ckpt(tmp_path_factory) -> Path:
    """An untrained LR-ASPP checkpoint in the project's format (working scale 1: the crops are resized by the native
    width over --load-width), with BatchNorm running statistics set from a batch (not their init), so that eval-mode
    outputs depend on the input and a drift of the statistics would show."""
    torch.manual_seed(5)
    model = build_segmenter("lraspp_mobilenet_v3_large", num_classes=19)
    for norm in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        norm.momentum = None  # cumulative: one batch sets the statistics
    with torch.no_grad():
        model.train()(torch.randn(4, 3, 48, 64))
    path = tmp_path_factory.mktemp("segmenter") / "best.pt"
    config = {"architecture": "lraspp_mobilenet_v3_large", "num_classes": 19, "scale": 1.0}
    save_segmenter_checkpoint(path, {**config, "normalization": NORMALIZATION}, model.state_dict())
    return path


def tiny_config(source: Path, target: Path, output: Path, **overrides) -> CycleGANConfig:
    """3 A and 4 B images in batches of 2: 2 batches per epoch."""
    values = dict(
        ngf=4, n_blocks=1, ndf=4, load_width=40, crop_size=(32, 24), batch_size=2, iterations=6, decay_iterations=3,
        pool_size=3, num_workers=0, threads=1, device="cpu", sample_every=3, save_every=2, log_every=1,
    )  # fmt: skip
    values.update(overrides)
    return CycleGANConfig(source=source, target=target, output=output, **values)


def semantic_loss(path: Path, weight: float) -> SemanticConsistency:
    return open_semantic_source(path).loss({"A": 1.25, "B": 1.0}, weight, torch.device("cpu"))


def step_gradients(config: CycleGANConfig, semantic: SemanticConsistency | None) -> tuple[dict, list[torch.Tensor]]:
    """One train_step from seed 0 on fixed images: its losses and the generators' gradients."""
    seed_everything(0)
    models = build_models(config)
    g_params = [*models.G_A.parameters(), *models.G_B.parameters()]
    opt_G = torch.optim.Adam(g_params, lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam([*models.D_A.parameters(), *models.D_B.parameters()], lr=2e-4, betas=(0.5, 0.999))
    pools = {"fake_A": ImagePool(3), "fake_B": ImagePool(3)}
    real_A, real_B = torch.rand(2, 3, 24, 32) * 2 - 1, torch.rand(2, 3, 24, 32) * 2 - 1
    losses, _ = train_step(models, opt_G, opt_D, pools, real_A, real_B, config, semantic)
    return losses, [p.grad.clone() for p in g_params]


def test_semantic_term_moves_the_generators_and_never_the_segmenter(segmenter_ckpt: Path) -> None:
    config = tiny_config(Path("."), Path("."), Path("."))
    semantic = semantic_loss(segmenter_ckpt, DEFAULT_WEIGHT)
    model = semantic.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert any(k.endswith("running_var") for k in before) and not model.training

    plain_losses, plain = step_gradients(config, None)
    losses, with_sem = step_gradients(config, semantic)
    assert list(losses) == [*LOSS_NAMES, "sem"] and list(plain_losses) == list(LOSS_NAMES)
    assert losses["sem"] > 0 and all(losses[k] == plain_losses[k] for k in ("G_A", "cycle_A", "idt_B"))
    changed = [not torch.equal(a, b) for a, b in zip(plain, with_sem, strict=True)]
    assert sum(changed) > len(changed) // 2  # the term reaches both generators' layers

    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BatchNorm statistics
    assert not model.training and all(not p.requires_grad and p.grad is None for p in model.parameters())

    _, measured = step_gradients(config, semantic_loss(segmenter_ckpt, 0.0))  # weight 0: measured, not trained
    assert all(torch.equal(a, b) for a, b in zip(plain, measured, strict=True))


def test_segmenter_sees_its_own_normalisation_of_the_cyclegan_tensors(segmenter_ckpt: Path) -> None:
    """[-1, 1] CycleGAN tensors reach the segmenter as x / 255 with its mean and std, as train-segmenter fed it."""
    semantic = semantic_loss(segmenter_ckpt, 1.0)
    image = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = semantic.model(segmenter_tensor(image)[None])["out"]
        got = semantic.logits(cyclegan_tensor(image)[None], "B")  # factor 1
        assert torch.allclose(got, expected, atol=1e-4)
        assert semantic.logits(cyclegan_tensor(image)[None], "A").shape[-2:] == (30, 40)  # factor 1.25


def test_weight_zero_is_the_run_without_the_loss(
    tiny_gta5: Path, tiny_cityscapes: Path, tmp_path: Path, segmenter_ckpt: Path
) -> None:
    short = dict(iterations=2, decay_iterations=1)
    plain = train_cyclegan(tiny_config(tiny_gta5, tiny_cityscapes, tmp_path / "plain", **short))
    zero = train_cyclegan(
        tiny_config(
            tiny_gta5, tiny_cityscapes, tmp_path / "zero", semantic_loss=segmenter_ckpt, semantic_weight=0, **short
        )
    )
    assert pth_bytes(zero) == pth_bytes(plain) and set(NETS) <= set(pth_bytes(plain))
    log = (zero / "train.log").read_text()
    words = re.findall(r"cyclegan: iteration 2: lr \S+ (.*), [\d.]+ s/it$", log, re.M)[0].split()
    assert words[::2] == [*LOSS_NAMES, "sem"] and float(words[-1]) > 0  # measured and logged after the reference's


def interrupt_step_after(monkeypatch, calls: int) -> None:
    """Make cyclegan.train_step raise on its call number `calls + 1`: an in-process stand-in for a kill."""
    real, count = cyclegan.train_step, [0]

    def step(*args, **kwargs):
        count[0] += 1
        if count[0] > calls:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(cyclegan, "train_step", step)


def test_resumed_semantic_run_ends_with_the_uninterrupted_bytes(
    tiny_gta5: Path, tiny_cityscapes: Path, tmp_path: Path, segmenter_ckpt: Path, monkeypatch
) -> None:
    config = tiny_config(
        tiny_gta5, tiny_cityscapes, tmp_path / "run", iterations=4, decay_iterations=2, semantic_loss=segmenter_ckpt
    )
    reference = pth_bytes(train_cyclegan(config, keep_train_state=True))
    recorded = json.loads((config.output / "config.json").read_text())
    (config.output).rename(tmp_path / "reference")

    interrupt_step_after(monkeypatch, 3)  # between saves: iteration 3 is lost, and redone from the state of 2
    with pytest.raises(KeyboardInterrupt):
        train_cyclegan(config, resume=True)
    monkeypatch.undo()
    train_cyclegan(config, resume=True, keep_train_state=True)
    assert pth_bytes(config.output) == reference  # every net, numbered net and both training states

    sem = recorded["semantic_loss"]
    assert recorded["config"]["semantic_weight"] == DEFAULT_WEIGHT
    assert sem["sha256"] == open_semantic_source(segmenter_ckpt).sha256 and sem["resize"] == {"A": 1.2, "B": 1.6}
    state = torch.load(config.output / "latest_train_state.pt", weights_only=True)
    generators = sum(1 for _ in [*build_models(config).G_A.parameters(), *build_models(config).G_B.parameters()])
    assert len(state["optimizers"]["G"]["param_groups"][0]["params"]) == generators  # no segmenter parameter
    assert "semantic" not in state["models"] and len(state["models"]) == 4

    longer = dict(iterations=8)
    record = config.output / "config.json"  # as if the file at --semantic-loss had been replaced since the start
    record.write_text(json.dumps({**recorded, "semantic_loss": {**sem, "sha256": "0" * 64}}))
    with pytest.raises(UserError, match="its sha256 .* differs from the 000000000000... the run in"):
        train_cyclegan(dataclasses.replace(config, **longer), resume=True)
    record.write_text(json.dumps(recorded))
    for changed, message in (
        ({"semantic_weight": 0.5}, "used --semantic-weight 1.0, this one 0.5;"),
        ({"semantic_loss": None}, f"used --semantic-loss {segmenter_ckpt}, this one none;"),
    ):
        with pytest.raises(UserError, match=re.escape(message)):
            train_cyclegan(dataclasses.replace(config, **changed, **longer), resume=True)
    plain = tiny_config(tiny_gta5, tiny_cityscapes, tmp_path / "plain", iterations=1, decay_iterations=0)
    train_cyclegan(plain, keep_train_state=True)
    with pytest.raises(UserError, match=re.escape(f"used --semantic-loss none, this one {segmenter_ckpt};")):
        train_cyclegan(dataclasses.replace(plain, semantic_loss=segmenter_ckpt, **longer), resume=True)


def test_files_that_are_not_segmenters_are_refused_before_training(
    tiny_gta5: Path, tiny_cityscapes: Path, tmp_path: Path
) -> None:
    generator = tmp_path / "latest_net_G_A.pth"
    save_generator(generator, build_models(tiny_config(tiny_gta5, tiny_cityscapes, tmp_path)).G_A)
    for path, problem in ((generator, "not a segmenter checkpoint"), (tmp_path / "none.pt", "no such checkpoint")):
        config = tiny_config(tiny_gta5, tiny_cityscapes, tmp_path / "out", semantic_loss=path)
        with pytest.raises(UserError, match=f"--semantic-loss {re.escape(str(path))}: {problem}"):
            train_cyclegan(config)
        assert not (tmp_path / "out").exists()
    with pytest.raises(UserError, match="--semantic-weight 0.5 needs --semantic-loss"):
        train_cyclegan(tiny_config(tiny_gta5, tiny_cityscapes, tmp_path / "out", semantic_weight=0.5))


def test_cli_refuses_a_missing_or_non_checkpoint_file_before_torch(tmp_path: Path) -> None:
    """In-process (click's runner): the torch-free checks of the command, one line, exit 2."""
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    base = ["--source", tmp_path, "--target", tmp_path, "--output", tmp_path / "out"]
    for path, problem in ((tmp_path / "missing.pt", "no such"), (text, "not a PyTorch checkpoint")):
        result = CliRunner().invoke(command.main, [*map(str, base), "--semantic-loss", str(path)])
        assert result.exit_code == 2 and problem in result.output and str(path) in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert command.DEFAULT_SEMANTIC_WEIGHT == DEFAULT_WEIGHT


@pytest.mark.slow
def test_cli_refuses_a_generator_as_segmenter_in_one_line(
    tiny_gta5: Path, tiny_cityscapes: Path, tmp_path: Path
) -> None:
    generator = tmp_path / "latest_net_G_A.pth"
    save_generator(generator, build_models(tiny_config(tiny_gta5, tiny_cityscapes, tmp_path)).G_A)
    out = tmp_path / "out"
    done = run_cli(
        "train-cyclegan", "--source", tiny_gta5, "--target", tiny_cityscapes, "--output", out,
        "--semantic-loss", generator, "--semantic-weight", "2", "--device", "cpu", timeout=120,
    )  # fmt: skip
    errors = [line for line in done.stderr.splitlines() if not line.startswith("INFO")]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert errors == [
        f"Error: --semantic-loss {generator}: not a segmenter checkpoint (no 'format': 'uda-trt-segmenter')"
    ]
    assert not out.exists()
