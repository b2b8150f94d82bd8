"""Engine-only inference per backend, behind one callable: uint8 N x H x W x 3 batch in, translated batch out.

ONNX Runtime and TensorRT go through the runtime's own runners (what batch-translate uses); PyTorch eager runs the
checkpoint wrapped in the exported graph's pre/post-processing (export.graphs.TranslatorGraph), so all backends
do the same work per image.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from uda_trt.runtime.jobs.workers import default_workers
from uda_trt.runtime.runners import open_runner, tensorrt_unavailable_reason

ORT_CPU = "onnxruntime-cpu"
EAGER = "pytorch-eager"
TENSORRT = "tensorrt"
BACKEND_NAMES = (ORT_CPU, EAGER, TENSORRT)
# Not an engine: Fourier Domain Adaptation with numpy (runtime.fda_translator), swept beside the engines because
# batch-translate runs it in their place. Its "artifact" is a folder of donor images.
FDA = "fda-numpy"
FDA_BETA = 0.01  # batch-translate's default (the FDA paper's)
Infer = Callable[[np.ndarray], np.ndarray]
Stream = Callable[[Iterable[np.ndarray]], Iterator[np.ndarray]]


def unavailable_reason(backend: str) -> str | None:
    """None when `backend` can run here, else one line saying why not."""
    if backend == TENSORRT:
        return tensorrt_unavailable_reason(for_running=True)
    if backend == EAGER and importlib.util.find_spec("torch") is None:
        return "torch not installed (pip install 'uda-trt[train]')"
    return None


def backend_for_artifact(path: Path) -> str:
    """The backend that runs an artifact file: .engine -> tensorrt, .onnx -> ONNX Runtime CPU, .pth/.pt -> eager."""
    name = Path(path).name
    if name.endswith(".engine"):
        return TENSORRT
    if name.endswith(".onnx"):
        return ORT_CPU
    if name.endswith((".pth", ".pt")):
        return EAGER
    raise ValueError(f"{path}: not a benchmarkable artifact (expected .onnx, .engine, .pth or .pt)")


def set_torch_threads(threads: int | None = None) -> int:
    """Give PyTorch the same intra-op thread count as the ONNX Runtime runner; returns it."""
    import torch

    threads = threads or default_workers()
    torch.set_num_threads(threads)
    return threads


@contextmanager
def open_backend(
    backend: str,
    artifact: Path,
    threads: int | None = None,
    batch_size: int | None = None,
    image_size: tuple[int, int] | None = None,
) -> Iterator[Stream]:
    """`with open_backend(name, path) as stream: outputs = stream(batches)`, outputs in input order; the session or
    model lives for the block. Runtime backends stream through the runner's `infer_many`, as batch-translate does
    (ONNX Runtime on the CPU keeps two batches in flight); PyTorch eager runs one batch at a time.
    `batch_size` and `image_size` (w, h): the largest batch and the size the block feeds, as a job tells its runner
    (backends that fix their shapes when they start, ONNX Runtime's TensorRT provider, build for exactly these)."""
    if backend == FDA:
        with _fda(artifact, threads) as stream:
            yield stream
        return
    if backend == EAGER:
        with _eager(artifact, threads) as infer:
            yield lambda batches: (infer(batch) for batch in batches)
        return
    runner_backend = TENSORRT if backend == TENSORRT else backend
    runner = open_runner(Path(artifact), backend=runner_backend, threads=threads)
    if batch_size is not None:
        runner.expect_inputs(batch_size, image_size)
    with runner:
        output = runner.sidecar.output_name()
        yield lambda batches: (outputs[output] for outputs in runner.infer_many(batches))


@contextmanager
def _eager(checkpoint: Path, threads: int | None) -> Iterator[Infer]:
    import torch

    from uda_trt.export.graphs import TranslatorGraph
    from uda_trt.train.checkpoints import build_translator, require_model_checkpoint

    set_torch_threads(threads)
    info = require_model_checkpoint(checkpoint)
    graph = TranslatorGraph(build_translator(info.architecture, info.args, info.state_dict)).eval()

    def infer(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return graph(torch.from_numpy(batch)).numpy()

    yield infer


@contextmanager
def _fda(donors: Path, threads: int | None) -> Iterator[Stream]:
    """FDA's translator as batch-translate drives it: each image of a batch paired with its donor's low-frequency
    amplitudes (read and transformed once per donor and size, then cached, as in a job where thousands of images
    share the donors), `threads` batches in flight."""
    from uda_trt.runtime.fda_translator import FdaTranslator, list_donors

    translator = FdaTranslator(list_donors(Path(donors)), FDA_BETA, threads=threads or default_workers())

    def pairs(batches: Iterable[np.ndarray]) -> Iterator[list[tuple[np.ndarray, np.ndarray]]]:
        for batch in batches:
            size = (batch.shape[2], batch.shape[1])
            yield [(image, translator.donor_amplitude(f"bench/{i}", size)) for i, image in enumerate(batch)]

    with translator:
        yield lambda batches: (np.stack(out["translated"]) for out in translator.infer_many(pairs(batches)))
