"""Tiny real checkpoints and what TensorRT says of a built engine, shared by the INT8 and engine tests."""

from __future__ import annotations

import json
from pathlib import Path

GENERATOR_STEM = "latest_net_G_A"


def write_generator(folder: Path, train_on: Path | None = None) -> Path:
    """FOLDER/latest_net_G_A.pth: a tiny ResNet generator (ngf 4, 2 blocks, seed 1); with `train_on` (a GTA5 root),
    after 30 Adam steps towards the identity on its images' top-left 64x32.

    Random weights make a generator whose InstanceNorms amplify noise: quantized, its outputs were within 3 grey
    levels on only 25 % of pixels, however many layers stayed float. Barely trained, it behaves like a translator:
    smooth outputs that INT8 reproduces once the most sensitive layers stay float.
    """
    import numpy as np
    import torch

    from uda_trt.runtime.imageio import read_rgb
    from uda_trt.train.networks import ResnetGenerator

    torch.manual_seed(1)
    generator = ResnetGenerator(ngf=4, n_blocks=2)
    if train_on is not None:
        images = np.stack([read_rgb(p)[:32, :64] for p in sorted((train_on / "images").glob("*.png"))])
        x = torch.from_numpy(images).float().permute(0, 3, 1, 2) / 127.5 - 1
        optimizer = torch.optim.Adam(generator.parameters(), 2e-3)
        for _ in range(30):
            loss = (generator(x) - x).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    path = Path(folder) / f"{GENERATOR_STEM}.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(generator.state_dict(), path)
    return path


def engine_layers(engine_path: Path, shape: tuple[int, int, int, int]) -> list:
    """A built engine's layers as its inspector reports them (JSON), with input shape `shape` set so formats and data
    types are shown. Layers are dicts only when the engine was built with ProfilingVerbosity.DETAILED. Needs a GPU."""
    import tensorrt as trt

    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(Path(engine_path).read_bytes())
    context = engine.create_execution_context()
    assert context.set_input_shape("images", shape)
    inspector = engine.create_engine_inspector()
    inspector.execution_context = context
    return json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))["Layers"]
