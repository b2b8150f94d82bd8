"""Tiny datasets written to disk in the real GTA5 and Cityscapes layouts: the one writer every test uses.

Every image is drawn from a seeded label map, then coloured by class (the Cityscapes label colours plus noise), so
the data are learnable (colour tells the class), translation and scoring see real PNGs, and each call with the same
arguments writes the same bytes. The label map is a street (sky over road, a car, an unlabelled strip on the left)
unless `label_ids` asks for blocks of 8x8 pixels drawn from those IDs (for scoring tests that need many classes,
void ones included).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from uda_trt.runtime.synthetic import LABEL_ID_COLOURS

SKY, ROAD, CAR, UNLABELED = 23, 7, 26, 0  # Cityscapes label IDs of the street scene
# Label IDs a ground truth may hold: the evaluated ones plus void/ignore-in-eval ones (0..6, 9, 10, 14..16, 18, 29, 30).
EVAL_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
VOID_LABEL_IDS = (0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30)
BLOCK = 8  # side of a block in block label maps, pixels


def street_labels(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Sky over road with a per-image horizon, a car box on the road, the two left columns unlabelled."""
    width, height = size
    labels = np.full((height, width), ROAD, np.uint8)
    labels[: rng.integers(height // 3, 2 * height // 3)] = SKY
    car_w, car_h = max(2, width // 4), max(2, height // 4)
    x, y = rng.integers(0, width - car_w), rng.integers(height // 2, height - car_h)
    labels[y : y + car_h, x : x + car_w] = CAR
    labels[:, :2] = UNLABELED
    return labels


def block_labels(rng: np.random.Generator, size: tuple[int, int], label_ids: tuple[int, ...]) -> np.ndarray:
    """Blocks of BLOCK x BLOCK pixels, each a label ID drawn from `label_ids` (regions, as real predictions have)."""
    width, height = size
    cells = rng.choice(np.array(label_ids, dtype=np.uint8), size=(height // BLOCK + 1, width // BLOCK + 1))
    return np.kron(cells, np.ones((BLOCK, BLOCK), dtype=np.uint8))[:height, :width]


def draw(
    rng: np.random.Generator, size: tuple[int, int], label_ids: tuple[int, ...] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(H x W x 3 uint8 RGB, H x W uint8 label IDs): a street, or blocks of `label_ids`; colour tells the class."""
    labels = street_labels(rng, size) if label_ids is None else block_labels(rng, size, label_ids)
    noise = rng.integers(-12, 13, (*labels.shape, 3))
    rgb = np.clip(LABEL_ID_COLOURS[labels].astype(int) + noise, 0, 255).astype(np.uint8)
    return rgb, labels


def _save(path: Path, image: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def write_gta5(
    root: Path,
    count: int = 3,
    size: tuple[int, int] = (64, 32),
    seed: int = 0,
    *,
    labels: bool = True,
    label_ids: tuple[int, ...] | None = None,
) -> Path:
    """ROOT/images/NNNNN.png from 00001 and, with `labels`, ROOT/labels/NNNNN.png: palette ("P") PNGs whose
    indices are label IDs and whose palette is the Cityscapes label colours, as GTA5 has. Returns `root`."""
    rng = np.random.default_rng(seed)
    (Path(root) / "images").mkdir(parents=True, exist_ok=True)
    if labels:
        (Path(root) / "labels").mkdir(parents=True, exist_ok=True)
    for index in range(1, count + 1):
        rgb, label_map = draw(rng, size, label_ids)
        _save(Path(root) / "images" / f"{index:05d}.png", Image.fromarray(rgb))
        if labels:
            label = Image.fromarray(label_map, mode="P")
            label.putpalette(LABEL_ID_COLOURS.ravel().tolist())
            _save(Path(root) / "labels" / f"{index:05d}.png", label)
    return Path(root)


def write_cityscapes(
    root: Path,
    cities: dict[str, int] | None = None,
    size: tuple[int, int] = (64, 32),
    seed: int = 0,
    *,
    split: str = "val",
    images: bool = True,
    label_ids: tuple[int, ...] | None = None,
) -> dict[str, np.ndarray]:
    """ROOT/leftImg8bit/SPLIT/CITY/STEM_leftImg8bit.png (with `images`) and ROOT/gtFine/SPLIT/CITY/
    STEM_gtFine_labelIds.png (8-bit label IDs), `cities` mapping city -> image count (default aachen 1, bremen 1),
    STEM = {city}_{index:06d}_{19 + index:06d}. Returns {stem: label IDs}, the ground truth as written."""
    rng = np.random.default_rng(seed)
    truth: dict[str, np.ndarray] = {}
    for city, count in (cities or {"aachen": 1, "bremen": 1}).items():
        for index in range(count):
            stem = f"{city}_{index:06d}_{19 + index:06d}"
            rgb, label_map = draw(rng, size, label_ids)
            _save(Path(root) / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", Image.fromarray(label_map))
            if images:
                _save(Path(root) / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", Image.fromarray(rgb))
            truth[stem] = label_map
    return truth


def write_paired_layouts(
    root: Path, count: int = 4, size: tuple[int, int] = (64, 32), seed: int = 0
) -> dict[str, Path]:
    """The same `count` photo / colour-label pairs in pix2pix's three layouts: ROOT/cityscapes (make-synthetic's
    writer, train split, with gtFine `_color.png`), ROOT/aligned/train/STEM.png (photo left, colour right) and the
    folders ROOT/A (photos) and ROOT/B (colours) of same-named files. Returns {"cityscapes", "aligned", "a", "b"}."""
    from uda_trt.runtime.imageio import read_rgb, write_image
    from uda_trt.runtime.synthetic import plan, write_item

    root = Path(root)
    for item in plan(root / "cityscapes", "cityscapes", count, size, seed, split="train"):
        write_item(item)
    for photo in sorted((root / "cityscapes" / "leftImg8bit" / "train").glob("*/*_leftImg8bit.png")):
        stem = photo.name.removesuffix("_leftImg8bit.png")
        colour = root / "cityscapes" / "gtFine" / "train" / photo.parent.name / f"{stem}_gtFine_color.png"
        a, b = read_rgb(photo), read_rgb(colour)
        write_image(root / "aligned" / "train" / f"{stem}.png", np.concatenate([a, b], axis=1))
        write_image(root / "A" / f"{stem}.png", a)
        write_image(root / "B" / f"{stem}.png", b)
    return {"cityscapes": root / "cityscapes", "aligned": root / "aligned", "a": root / "A", "b": root / "B"}
