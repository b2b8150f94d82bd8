"""FDA as a batch-translate translator: the donor list, the per-image donor choice, and a runner-like object.

The donor of a source image is chosen from a hash of the seed and the sample's key (its relative path without
suffix) over the sorted donor list, never from a random stream or the run order: a rerun, a resumed run and a run
with another batch size or worker count pick the same donor for every image, so their outputs are byte-identical.
The donor list's hash (relative paths and sizes) goes into the manifest in place of an artifact's sha256.

`FdaTranslator` keeps the runner contract batch-translate drives (`with`, `infer_many`, `backend`,
`active_providers`), but its batches are lists of (source, donor amplitudes) pairs, not stacked arrays: without
`--size` each image is translated at its own size, and images of one batch may differ in size. batch-translate's
decode threads ask `donor_amplitude` for a sample's donor: read, resized to the source's size and transformed once
per donor and size, then kept (within a memory budget), since thousands of sources share a few thousand donors.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from uda_trt.runtime.datasets import cityscapes_samples, folder_samples
from uda_trt.runtime.errors import UserError
from uda_trt.runtime.fda import fda_with_amplitude, low_frequency_amplitude, to_uint8
from uda_trt.runtime.imageio import LogOnce, read_rgb, resize_rgb
from uda_trt.runtime.pipeline import prefetch
from uda_trt.runtime.safepaths import check_input_inside

TARGET_SPLIT = "train"  # a Cityscapes target root donates its training images: the target data UDA may use
MAX_BETA = 0.5  # b = floor(min(H, W) * beta) reaches half the shorter side: the window covers that whole axis
MAX_RUNS_IN_FLIGHT = 4  # batches translated at once; each holds a few float64 spectra per image (~50 MB at GTA5 size)
# donor amplitude windows kept; at beta 0.01 one is ~6 KB at GTA5 size (every donor fits), at 0.5 ~24 MB
AMPLITUDE_CACHE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Donors:
    """The amplitude donors: a Cityscapes root's leftImg8bit/train images or every image of a folder, sorted."""

    root: Path
    layout: str  # "cityscapes" or "folder"
    paths: tuple[Path, ...]
    sha256: str  # of the relative paths and file sizes, in order: what a rerun must find unchanged

    def describe(self) -> dict:
        """The manifest's record of the donor list (paths themselves are not listed: thousands of them)."""
        return {
            "target_root": str(self.root.resolve()),
            "target_layout": self.layout,
            "target_split": TARGET_SPLIT if self.layout == "cityscapes" else None,
            "donors": len(self.paths),
            "donors_sha256": self.sha256,
        }


def list_donors(root: Path) -> Donors:
    """The donor images under `root` (flag --fda): leftImg8bit/train of a Cityscapes root, else an image folder."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--fda: {root} is not a folder")
    layout = "cityscapes" if (root / "leftImg8bit").is_dir() else "folder"
    try:
        if layout == "cityscapes":
            samples = cityscapes_samples(root, TARGET_SPLIT, require_labels=False)
        else:
            samples = folder_samples(root)
    except UserError as exc:
        raise UserError(f"--fda: {exc.message}") from None
    paths = tuple(sorted((s.image for s in samples), key=lambda p: p.relative_to(root).as_posix()))
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.relative_to(root).as_posix()}\t{path.stat().st_size}\n".encode())
    return Donors(root, layout, paths, digest.hexdigest())


def donor_index(key: str, seed: int, count: int) -> int:
    """The donor of the sample `key`: sha256 of "seed:key" modulo the donor count (uniform, order-free)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def check_beta(beta: float) -> None:
    """Refuse (one line, exit 2) a beta outside (0, 0.5]."""
    if not 0 < beta <= MAX_BETA:
        raise UserError(f"--beta: {beta} is outside (0, {MAX_BETA}]; the paper uses 0.01 to 0.09")


class FdaTranslator:
    """Translates batches of (source, donor amplitudes) pairs by FDA; the runner contract of runtime.runners."""

    backend = "fda"
    default_batch_size = 4  # images per batch when the job does not say; FDA's bytes do not depend on it

    def __init__(self, donors: Donors, beta: float, seed: int = 0, threads: int = 1) -> None:
        check_beta(beta)
        self.donors = donors
        self.beta = beta
        self.seed = seed
        self.threads = max(1, min(threads, MAX_RUNS_IN_FLIGHT))
        self.active_providers: list[str] = []  # no execution providers: numpy on the CPU
        self._amplitudes: OrderedDict[tuple[Path, int, int], np.ndarray] = OrderedDict()  # least recent first
        self._cache_bytes = 0
        self._lock = threading.Lock()

    def donor_for(self, key: str) -> Path:
        """The donor image of the sample `key`."""
        return self.donors.paths[donor_index(key, self.seed, len(self.donors.paths))]

    def donor_amplitude(self, key: str, size: tuple[int, int], log_once: LogOnce | None = None) -> np.ndarray:
        """The window amplitudes of the sample `key`'s donor resized to `size` (w, h). A donor that cannot be read
        is a SampleError naming it: the sample is skipped like one with a bad image. Thread-safe; two threads may
        compute one donor at once (same result), never corrupt the cache."""
        path = self.donor_for(key)
        cache_key = (path, size[0], size[1])
        with self._lock:
            if cache_key in self._amplitudes:
                self._amplitudes.move_to_end(cache_key)
                return self._amplitudes[cache_key]
        check_input_inside(path, self.donors.root)
        amplitude = low_frequency_amplitude(resize_rgb(read_rgb(path, log_once), size), self.beta)
        with self._lock:
            if cache_key not in self._amplitudes and amplitude.nbytes <= AMPLITUDE_CACHE_BYTES:
                self._amplitudes[cache_key] = amplitude
                self._cache_bytes += amplitude.nbytes
                while self._cache_bytes > AMPLITUDE_CACHE_BYTES:
                    self._cache_bytes -= self._amplitudes.popitem(last=False)[1].nbytes
        return amplitude

    def settings(self) -> dict:
        """What the manifest and report record instead of an artifact: the donor list and the FDA settings."""
        return {"beta": self.beta, "seed": self.seed, **self.donors.describe()}

    def __enter__(self) -> FdaTranslator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def _translate(self, batch: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, list[np.ndarray]]:
        return {"translated": [to_uint8(fda_with_amplitude(image, amp, self.beta)) for image, amp in batch]}

    def infer_many(
        self, batches: Iterable[list[tuple[np.ndarray, np.ndarray]]]
    ) -> Iterator[dict[str, list[np.ndarray]]]:
        """Batches of (source uint8 H x W x 3, its donor's `donor_amplitude` at H x W) pairs ->
        {"translated": [uint8 H x W x 3, ...]} per batch, in order; `threads` batches computed at once (numpy's
        FFTs release the GIL)."""
        with ThreadPoolExecutor(self.threads, thread_name_prefix="fda") as pool:
            for future in prefetch(pool, self._translate, batches, depth=self.threads):
                yield future.result()
