"""Benchmark models: reference-format ResNet generator checkpoints with random weights, exported to ONNX.

Speed does not depend on what the weights learned, so a freshly initialised generator (the reference's N(0, 0.02)
init) stands in for a trained one. The checkpoint is a bare state_dict with the reference key names, exactly what
the reference test script loads, and the ONNX goes through the package's own exporter and its parity check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uda_trt.benchmarks.flops import count_macs
from uda_trt.runtime.sidecar import file_sha256


@dataclass(frozen=True)
class GeneratorSpec:
    """A ResNet generator of the reference family: width and depth."""

    name: str
    ngf: int
    n_blocks: int


@dataclass(frozen=True)
class ModelArtifacts:
    """One benchmark model on disk: its checkpoint (.pth) and its exported FP32 ONNX (sidecar beside it)."""

    spec: GeneratorSpec
    checkpoint: Path
    onnx: Path
    working_size: tuple[int, int]

    def hashes(self) -> dict[str, str]:
        return {str(self.checkpoint): file_sha256(self.checkpoint), str(self.onnx): file_sha256(self.onnx)}


def make_generator(
    spec: GeneratorSpec, folder: Path, working_size: tuple[int, int], parity_image: np.ndarray, seed: int = 0
) -> ModelArtifacts:
    """Write `folder/NAME.pth` (random init) and export `folder/NAME.onnx` + sidecar at `working_size`.

    The export's parity check runs on the one `parity_image` (resized to the working size): at 1024x512 a
    ResNet-9 forward pass costs seconds, and the benchmark compares full outputs against PyTorch anyway.
    """
    import torch

    from uda_trt.export.onnx_export import export_onnx
    from uda_trt.train.checkpoints import save_generator
    from uda_trt.train.networks import ResnetGenerator, init_weights

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    generator = init_weights(ResnetGenerator(3, 3, ngf=spec.ngf, n_blocks=spec.n_blocks))
    checkpoint = folder / f"{spec.name}.pth"
    save_generator(checkpoint, generator)
    result = export_onnx(checkpoint, folder, working_size=working_size, parity_images=[parity_image], fp16=False)
    return ModelArtifacts(spec, checkpoint, result.onnx_path, tuple(working_size))


def macs_per_image(onnx_path: Path, size: tuple[int, int]) -> int:
    """Multiply-accumulates of one image at size (w, h), counted on the ONNX graph (benchmarks.flops)."""
    width, height = size
    return count_macs(Path(onnx_path), {"images": (1, height, width, 3)}).total


def build_engine_for(model: ModelArtifacts, folder: Path, parity_image: np.ndarray, max_batch: int) -> Path:
    """A TensorRT engine of `model` (GPU machines only): FP16 ONNX export, then a verified engine build.

    Written to `folder` (STEM.onnx, STEM.fp16.onnx, STEM.engine, one sidecar), with one profile over batch
    1..max_batch at the model's working size.
    """
    from uda_trt.export.engine import default_profile, export_engine
    from uda_trt.export.onnx_export import export_onnx

    result = export_onnx(model.checkpoint, folder, working_size=model.working_size, parity_images=[parity_image])
    opt = min(4, max_batch)
    profile = default_profile("translate", model.working_size, batch=(1, opt, max_batch))
    build, _ = export_engine(result, profile)
    return build.path
