"""Translation quality from Inception-v3 features: FID and KID (pool features, 2048-d), Inception Score (logits).

The network and its input pipeline are torch-fidelity's `FeatureExtractorInceptionV3` (the TensorFlow FID Inception
ported to PyTorch, with TF1's bilinear resize to 299x299), built from a local weights file so nothing is downloaded;
the formulas are benchmarks.frechet's, equal to torch-fidelity's on the same features. With the same weights file,
`inception_metrics` gives the numbers `torch_fidelity.calculate_metrics(input1=FAKE, input2=REAL, fid, kid, isc)`
gives (the translations are its input 1).

The weights are the standard FID Inception (the TF graph of 2015-12-05) as the common packages ship it:
pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` or torch-fidelity's `weights-inception-2015-12-05-6726825d.pth`,
both torchvision-named state dicts of the same network. They are read from --inception-weights or from the torch
hub cache those packages download into ($TORCH_HOME/hub/checkpoints, ~/.cache/torch/hub/checkpoints by default).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from uda_trt.benchmarks import frechet
from uda_trt.runtime.datasets import folder_samples
from uda_trt.runtime.errors import SampleError, UserError
from uda_trt.runtime.fcn_score import fcn_score, pair_translations
from uda_trt.runtime.imageio import LogOnce, read_rgb
from uda_trt.runtime.jobs.files import atomic_write_bytes, json_plain, write_json
from uda_trt.runtime.jobs.progress import Progress
from uda_trt.runtime.pipeline import prefetch
from uda_trt.runtime.sidecar import file_sha256

log = logging.getLogger(__name__)

WEIGHT_FILES = ("pt_inception-2015-12-05-6726825d.pth", "weights-inception-2015-12-05-6726825d.pth")
POOL_FEATURES = "2048"
LOGITS = "logits_unbiased"  # torch-fidelity's IS input: the logits without the final layer's bias


def hub_checkpoint_dir() -> Path:
    """Where torch.hub (and so pytorch-fid, torch-fidelity, torchmetrics) caches downloaded weights."""
    torch_home = os.environ.get("TORCH_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "torch"
    return Path(torch_home).expanduser() / "hub" / "checkpoints"


def find_inception_weights(path: Path | None = None) -> Path:
    """The weights file: `path` when given, else the first of WEIGHT_FILES in the hub cache; UserError if none."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no such file (--inception-weights)")
        return path
    cache = hub_checkpoint_dir()
    for name in WEIGHT_FILES:
        if (cache / name).is_file():
            return cache / name
    raise UserError(
        f"no FID Inception weights: put {WEIGHT_FILES[0]} (pytorch-fid's) or {WEIGHT_FILES[1]} (torch-fidelity's) "
        f"in {cache}, or pass --inception-weights PATH"
    )


def load_inception(weights: Path, device: str = "cpu"):
    """torch-fidelity's FID Inception with `weights`, in eval mode, returning (pool features, unbiased logits).

    The file is first read as plain tensors (weights_only) and checked for the network's last layers, so another
    checkpoint is refused in one line before the library unpickles it.
    """
    import torch

    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike for a file that is not a state dict
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{weights}: not a PyTorch state dict ({first_line})") from None
    fc = state.get("fc.weight") if isinstance(state, dict) else None
    if fc is None or tuple(fc.shape) != (1008, 2048) or "Mixed_7c.branch_pool.conv.weight" not in state:
        raise UserError(f"{weights}: not the FID Inception weights (no 1008 x 2048 fc.weight and Mixed_7c layers)")
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError:
        raise UserError("FID, KID and IS need torch-fidelity: pip install 'uda-trt[quality]'") from None
    try:
        network = FeatureExtractorInceptionV3(
            "inception-v3-compat", [POOL_FEATURES, LOGITS], feature_extractor_weights_path=str(weights)
        )
    except (RuntimeError, KeyError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{weights}: not the FID Inception weights ({first_line})") from None
    return network.to(device)


def write_random_inception_weights(path: Path, seed: int = 0) -> Path:
    """A weights file in the FID Inception's format with random weights, for tests and dry runs.

    torchvision's Inception-v3 with 1008 classes and no auxiliary head has the same parameter names. Convolutions get
    He-normal weights and batch norm the identity statistics, so activations keep their scale through the 94 layers
    for any input (batch-norm statistics measured on some images make others explode or vanish).
    """
    import torch
    import torchvision

    generator = torch.Generator().manual_seed(seed)
    model = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=generator)
            elif isinstance(module, torch.nn.Linear):
                module.weight.normal_(0.0, 0.1, generator=generator)
                module.bias.normal_(0.0, 0.1, generator=generator)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def image_paths(root: Path) -> list[Path]:
    """Every image under `root` (recursive, sorted); a GTA5-layout root (ROOT/images) means its images/ folder."""
    root = Path(root)
    if (root / "images").is_dir():
        root = root / "images"
    return [sample.image for sample in folder_samples(root)]


FeatureFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def torch_features(weights: Path, device: str = "cpu") -> FeatureFn:
    """uint8 N x H x W x 3 batch -> (pool, logits) with torch-fidelity's network in PyTorch."""
    import torch

    network = load_inception(weights, device)

    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            pool, logits = network(torch.from_numpy(batch).permute(0, 3, 1, 2).to(device))
        return pool.cpu().numpy(), logits.cpu().numpy()

    return run


def onnx_features(onnx_path: Path) -> FeatureFn:
    """uint8 N x H x W x 3 batch -> (pool, logits) with ONNX Runtime on the exported network (CUDA when present)."""
    import onnxruntime as ort

    wanted = ("CUDAExecutionProvider", "CPUExecutionProvider")
    session = ort.InferenceSession(str(onnx_path), providers=[p for p in wanted if p in ort.get_available_providers()])

    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pool, logits = session.run(list(ONNX_OUTPUTS), {"images": np.ascontiguousarray(batch)})
        return pool, logits

    return run


def inception_features(
    paths: list[Path], features_of: FeatureFn, batch_size: int = 16, workers: int = 2
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """(N x 2048 pool features, N x 1008 unbiased logits, skipped files) of the readable images in `paths`.

    Consecutive images of one size share a batch (the network resizes each batch to 299x299 itself).
    """
    pools, logits, skipped, batch = [], [], [], []
    log_once = LogOnce()

    def load(path: Path) -> np.ndarray | SampleError:
        try:
            return read_rgb(path, log_once)
        except SampleError as exc:
            return exc

    def run(images: list[np.ndarray]) -> None:
        pool, logit = features_of(np.stack(images))
        pools.append(pool)
        logits.append(logit)

    with (
        ThreadPoolExecutor(max_workers=workers) as pool_executor,
        Progress(len(paths), "inception features") as bar,
    ):
        for image in (f.result() for f in prefetch(pool_executor, load, paths, depth=2 * batch_size)):
            bar.update(1)
            if isinstance(image, SampleError):
                log.warning("skipped %s: %s", image.path, image.problem)
                skipped.append({"file": str(image.path), "reason": image.problem})
                continue
            if batch and (len(batch) == batch_size or batch[0].shape != image.shape):
                run(batch)
                batch = []
            batch.append(image)
        if batch:
            run(batch)
    if not pools:
        return np.zeros((0, 2048), np.float32), np.zeros((0, 1008), np.float32), skipped
    return np.concatenate(pools), np.concatenate(logits), skipped


def metrics_from_features(
    real_pool: np.ndarray,
    fake_pool: np.ndarray,
    fake_logits: np.ndarray,
    kid_subsets: int = frechet.KID_SUBSETS,
    kid_subset_size: int = frechet.KID_SUBSET_SIZE,
    is_splits: int = frechet.IS_SPLITS,
) -> dict:
    """FID, KID and IS from features. KID subsets shrink to the smaller set and IS splits to the fake count when the
    sets are smaller than the defaults (IS splits keep at least 2 images each); the sizes used are recorded."""
    if min(len(real_pool), len(fake_pool)) < 2:
        raise UserError(
            f"FID needs at least 2 readable images per set; got {len(real_pool)} real, {len(fake_pool)} fake"
        )
    subset_size = min(kid_subset_size, len(real_pool), len(fake_pool))
    splits = max(1, min(is_splits, len(fake_logits) // 2))  # splits of one image would all score exactly 1
    kid_mean, kid_std = frechet.kid_from_features(fake_pool, real_pool, kid_subsets, subset_size)
    is_mean, is_std = frechet.inception_score(fake_logits, splits)
    return {
        "fid": frechet.fid_from_features(fake_pool, real_pool),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "kid_subsets": kid_subsets,
        "kid_subset_size": subset_size,
        "inception_score_mean": is_mean,
        "inception_score_std": is_std,
        "inception_score_splits": splits,
    }


def inception_metrics(
    real: Path,
    fake: Path,
    weights: Path,
    *,
    batch_size: int = 16,
    device: str = "cpu",
    onnx_path: Path | None = None,
    kid_subsets: int = frechet.KID_SUBSETS,
    kid_subset_size: int = frechet.KID_SUBSET_SIZE,
    is_splits: int = frechet.IS_SPLITS,
) -> dict:
    """FID and KID of the images under `fake` against those under `real`, and the Inception Score of `fake`.

    With `onnx_path`, the features come from ONNX Runtime on that file (export_inception_onnx of `weights`, made
    there when missing), else from PyTorch on `device`.
    """
    real_paths, fake_paths = image_paths(real), image_paths(fake)
    if onnx_path is not None:
        if not Path(onnx_path).is_file():
            export_inception_onnx(weights, onnx_path)
        features_of = onnx_features(onnx_path)
    else:
        features_of = torch_features(weights, device)
    real_pool, _, real_skipped = inception_features(real_paths, features_of, batch_size)
    fake_pool, fake_logits, fake_skipped = inception_features(fake_paths, features_of, batch_size)
    return {
        **metrics_from_features(real_pool, fake_pool, fake_logits, kid_subsets, kid_subset_size, is_splits),
        "real_images": len(real_pool),
        "fake_images": len(fake_pool),
        "images_skipped": len(real_skipped) + len(fake_skipped),
        "skipped": real_skipped + fake_skipped,
        "inception_weights": str(weights),
        "inception_weights_sha256": file_sha256(weights),
        "feature_extractor": "torch-fidelity FeatureExtractorInceptionV3 (pool 2048, logits_unbiased)",
        "feature_backend": f"onnxruntime ({onnx_path})" if onnx_path is not None else f"torch ({device})",
    }


def _number(value: float | None, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{100 * value:.2f}" if percent else f"{value:.4f}"


def metrics_markdown(result: dict) -> str:
    """metrics.md: the Inception metrics and the FCN-score, whichever were computed."""
    lines = ["# Translation quality", ""]
    if "fid" in result:
        lines += [
            f"Real `{result['real']}` ({result['real_images']} images) against translated `{result['fake']}` "
            f"({result['fake_images']} images); Inception weights `{result['inception_weights']}` "
            f"(sha256 {result['inception_weights_sha256'][:12]}).",
            "",
            "| metric | value |",
            "|---|---|",
            f"| FID | {_number(result['fid'])} |",
            f"| KID (x 1000) | {_number(1000 * result['kid_mean'])} +- {_number(1000 * result['kid_std'])} "
            f"({result['kid_subsets']} subsets of {result['kid_subset_size']}) |",
            f"| Inception Score | {_number(result['inception_score_mean'])} +- "
            f"{_number(result['inception_score_std'])} ({result['inception_score_splits']} splits) |",
            "",
        ]
    fcn = result.get("fcn_score")
    if fcn:
        lines += [
            f"FCN-score: segmenter `{fcn['segmenter']}` on `{fcn['images']}` against labels `{fcn['labels']}` "
            f"({fcn['images_scored']} images scored, {fcn['images_skipped']} skipped).",
            "",
            "| metric | % |",
            "|---|---|",
            f"| mIoU | {_number(fcn['mean_iou'], True)} |",
            f"| pixel accuracy (PA) | {_number(fcn['pixel_accuracy'], True)} |",
            f"| mean class accuracy (MPA) | {_number(fcn['mean_accuracy'], True)} |",
            f"| frequency-weighted IoU (FWIoU) | {_number(fcn['fw_iou'], True)} |",
            "",
            "| class | IoU % | accuracy % |",
            "|---|---|---|",
            *(
                f"| {c['name']} | {_number(c['iou'], True)} | {_number(c['accuracy'], True)} |"
                for c in fcn["per_class"]
            ),
            "",
        ]
    return "\n".join(lines)


def evaluate_translation(
    output: Path,
    *,
    fake: Path,
    real: Path | None = None,
    inception_weights: Path | None = None,
    labels: Path | None = None,
    segmenter: Path | None = None,
    id_type: str = "labelid",
    batch_size: int = 16,
    device: str = "cpu",
    features: str = "torch",
    backend: str = "auto",
    kid_subsets: int = frechet.KID_SUBSETS,
    kid_subset_size: int = frechet.KID_SUBSET_SIZE,
) -> dict:
    """FID/KID/IS when `real` is given, the FCN-score when `segmenter` is; writes OUT/metrics.{json,md}, returns the
    metrics.json dict. The weights are looked up before any image is read, so a missing file fails at once."""
    if real is None and segmenter is None:
        raise UserError("nothing to compute: give --real (FID, KID, IS) and/or --segmenter (FCN-score)")
    if labels is not None and segmenter is None:
        raise UserError("--labels needs --segmenter (the FCN-score segments the translations with it)")
    if segmenter is not None:  # the FCN-score's inputs are checked before the long Inception pass
        if not Path(segmenter).is_file():
            raise UserError(f"{segmenter}: no such file (--segmenter)")
        pair_translations(fake, labels)
    result: dict = {"schema_version": 1, "fake": str(fake)}
    if real is not None:
        weights = find_inception_weights(inception_weights)
        onnx_path = None
        if features == "onnxruntime":  # one export per weights file, kept in OUTPUT for the next run
            onnx_path = Path(output) / f"inception-{file_sha256(weights)[:12]}.onnx"
        result["real"] = str(real)
        result.update(
            inception_metrics(
                real,
                fake,
                weights,
                batch_size=batch_size,
                device=device,
                onnx_path=onnx_path,
                kid_subsets=kid_subsets,
                kid_subset_size=kid_subset_size,
            )
        )
    if segmenter is not None:
        result["fcn_score"] = fcn_score(segmenter, fake, labels, id_type=id_type, backend=backend)
    result = json_plain(result)
    output = Path(output)
    write_json(output / "metrics.json", result)
    atomic_write_bytes(output / "metrics.md", metrics_markdown(result).encode())
    return result


# ---------------------------------------------------------------------------------------------- ONNX export

ONNX_OUTPUTS = ("pool", "logits")


def _inception_core(network):
    """A torch module running `network` (torch-fidelity's) from its resized 299x299 float NCHW input on, returning
    (pool features, unbiased logits): the library's forward after its resize, layer for layer."""
    import torch

    layers = [
        getattr(network, name)
        for name in (
            "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
            "MaxPool_2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
            "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "AvgPool",
        )
    ]  # fmt: skip

    class Core(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.Sequential(*layers)
            self.fc = network.fc

        def forward(self, x):
            pool = torch.flatten(self.layers((x - 128) / 128), 1)
            return pool, pool.mm(self.fc.weight.T)

    return Core()


def export_inception_onnx(weights: Path, path: Path, opset: int = 17) -> Path:
    """The FID Inception as ONNX: input `images` uint8 N x H x W x 3 RGB of any size, outputs `pool` N x 2048 and
    `logits` N x 1008 (unbiased), so ONNX Runtime (CUDA, TensorRT) computes the features of large sets.

    PyTorch's exporter has no TF1 bilinear resize, so the network is exported from its 299x299 float input on and
    the resize is ONNX's own Resize in `asymmetric` linear mode, which is TF1's (source = output index x in/out,
    no half-pixel offset): Cast -> Transpose -> Resize is prepended to the exported graph.
    """
    import io
    import warnings

    import onnx
    import torch
    from onnx import TensorProto, helper

    core = _inception_core(load_inception(weights)).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            core,
            (torch.zeros((1, 3, 299, 299)),),
            buffer,
            input_names=["resized"],
            output_names=list(ONNX_OUTPUTS),
            dynamic_axes={"resized": {0: "batch"}, "pool": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    graph = model.graph
    del graph.input[:]
    graph.input.append(helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", "height", "width", 3]))
    graph.initializer.extend(
        [
            helper.make_tensor("resize_hw", TensorProto.INT64, [2], [299, 299]),
            helper.make_tensor("shape_start", TensorProto.INT64, [1], [0]),
            helper.make_tensor("shape_end", TensorProto.INT64, [1], [2]),
        ]
    )
    prelude = [
        helper.make_node("Cast", ["images"], ["images_float"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["images_float"], ["images_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Shape", ["images_nchw"], ["nchw_shape"]),
        helper.make_node("Slice", ["nchw_shape", "shape_start", "shape_end"], ["batch_channels"]),
        helper.make_node("Concat", ["batch_channels", "resize_hw"], ["resize_sizes"], axis=0),
        helper.make_node(
            "Resize",
            ["images_nchw", "", "", "resize_sizes"],
            ["resized"],
            mode="linear",
            coordinate_transformation_mode="asymmetric",
        ),
    ]
    nodes = prelude + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, model.SerializeToString())  # a killed export never leaves a file a rerun would reuse
    return path
