"""Hostile checkpoints given to export-trt, built here, and refused by train.checkpoints: each in one line (exit 2),
running no code, inflating no zip bomb, writing nothing (the output folder stays empty, nothing appears anywhere
else)."""

from __future__ import annotations

import builtins
import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from uda_trt.train.checkpoints import TRAIN_STATE_FORMAT


class Payload:
    """Unpickling this runs `exec`, which writes `marker`: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.exec, (f"open({self.marker!r}, 'w').write('code ran')",)


def _state_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save({"model.1.weight": torch.zeros(4, 3, 7, 7)}, buffer)
    return buffer.getvalue()


def _zip_bomb(path: Path, marker: Path) -> None:
    """A real torch archive whose data member is replaced by 128 MiB of zeros, deflated to ~125 kB: twice what
    train.checkpoints lets any file declare (4x its size plus 64 MiB)."""
    source = zipfile.ZipFile(io.BytesIO(_state_bytes()))
    with zipfile.ZipFile(path, "w") as archive:
        for info in source.infolist():
            if info.filename.endswith("/data/0"):
                archive.writestr(info.filename, bytes(128 << 20), compress_type=zipfile.ZIP_DEFLATED)
            else:
                archive.writestr(info, source.read(info))


CASES = {
    "pickle_payload_protocol_2": (lambda p, m: p.write_bytes(pickle.dumps(Payload(m), protocol=2)), "exec"),
    "pickle_payload_protocol_5": (lambda p, m: p.write_bytes(pickle.dumps(Payload(m), protocol=5)), "checkpoint"),
    "torch_archive_with_payload": (lambda p, m: torch.save({"weights": Payload(m)}, p), "exec"),
    "torch_archive_truncated": (lambda p, m: p.write_bytes(_state_bytes()[:700]), "not a PyTorch checkpoint"),
    "zip_bomb_archive": (_zip_bomb, "zip bomb"),
    "random_bytes": (lambda p, m: p.write_bytes(np.random.default_rng(3).bytes(5000)), "not a PyTorch checkpoint"),
    "zero_bytes": (lambda p, m: p.write_bytes(b""), "not a PyTorch checkpoint"),
    "json_named_pth": (lambda p, m: p.write_text(json.dumps({"model.1.weight": [1, 2]})), "not a PyTorch checkpoint"),
    "zip_not_torch": (lambda p, m: zipfile.ZipFile(p, "w").writestr("readme.txt", "hello"), "checkpoint"),
    "training_state": (
        lambda p, m: torch.save({"format": TRAIN_STATE_FORMAT, "epoch": 3, "config": {}}, p),
        "training state",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_checkpoint_is_refused_in_one_line(case, tmp_path, cli, user_error, untouched):
    build, names = CASES[case]
    checkpoint, marker, out = tmp_path / "run" / "latest_net_G_A.pth", tmp_path / "MARKER", tmp_path / "out"
    checkpoint.parent.mkdir()
    build(checkpoint, marker)
    if case.startswith("pickle_payload"):  # the payload is live: plain pickle would run it
        pickle.loads(checkpoint.read_bytes())
        assert marker.read_text() == "code ran"
        marker.unlink()
    check = untouched(tmp_path, out)
    result = cli("export-trt", checkpoint, "--output-dir", out, "--no-fp16")
    check()
    user_error(result, names=str(checkpoint))
    assert names in result.stderr
    assert not marker.exists(), "unpickling ran the checkpoint's code"
    assert not out.exists() or not any(out.iterdir())
