"""The files of a paired dataset (pix2pix): which image pairs with which, checked before any training. Torch-free,
so train-pix2pix answers bad data in a second, before it imports torch.

Three layouts (docs/contracts.md, "Paired layouts"):
- aligned, the reference's format: ROOT/{split}/ (train/, val/, test/) images, each holding A on the left half and B
  on the right half;
- folders: two folders whose images pair by relative path without suffix (`A/x.jpg` with `B/x.png`);
- cityscapes: ROOT/leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png (A, the photo) with
  ROOT/gtFine/{split}/{city}/{stem}_gtFine_color.png (B, the colour label map).

An image without its partner, the two images of a pair of different sizes, an aligned image of odd width are user
errors, one line naming the file. Sizes come from file headers, so nothing is decoded here; a file whose header is
unreadable skips its pair (one warning line, counted in `PairListing.skipped`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from struct import error as struct_error

from PIL import Image

from uda_trt.runtime.datasets import CITYSCAPES_IMAGE_SUFFIX, cityscapes_samples, folder_samples
from uda_trt.runtime.errors import SampleError, UserError

log = logging.getLogger(__name__)

CITYSCAPES_COLOUR_SUFFIX = "_gtFine_color.png"
LAYOUTS = ("aligned", "folders", "cityscapes")


@dataclass(frozen=True)
class Pair:
    """One training pair: files `a` and `b`, the same file in the aligned layout (A left half, B right half)."""

    key: str
    a: Path
    b: Path


def aligned_pairs(root: Path, split: str) -> list[Pair]:
    """The reference's aligned layout: every image under ROOT/{split}, each an A|B pair."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise UserError(
            f"{folder}: no such folder (an aligned pix2pix root holds {split}/ with A|B images side by side; "
            "a Cityscapes root holds leftImg8bit/ and gtFine/; two folders of pairs go to --folder-a and --folder-b)"
        )
    return [Pair(sample.key, sample.image, sample.image) for sample in folder_samples(folder)]


def folder_pairs(folder_a: Path, folder_b: Path) -> list[Pair]:
    """Images of two folders paired by relative path without suffix; an image without its partner is refused."""
    a = {sample.key: sample.image for sample in folder_samples(Path(folder_a))}
    b = {sample.key: sample.image for sample in folder_samples(Path(folder_b))}
    for mine, other, other_folder in ((a, b, folder_b), (b, a, folder_a)):
        unpaired = [path for key, path in mine.items() if key not in other]
        if unpaired:
            more = f" ({len(unpaired)} unpaired images in all)" if len(unpaired) > 1 else ""
            raise UserError(f"{unpaired[0]}: no image of the same name in {other_folder} to pair it with{more}")
    return [Pair(key, path, b[key]) for key, path in a.items()]


def cityscapes_pairs(root: Path, split: str) -> list[Pair]:
    """Cityscapes photos (A) with their gtFine colour label images (B); a photo without one is refused."""
    root = Path(root)
    pairs, missing = [], []
    for sample in cityscapes_samples(root, split, require_labels=False):
        city, stem = sample.image.parent.name, sample.image.name[: -len(CITYSCAPES_IMAGE_SUFFIX)]
        colour = root / "gtFine" / split / city / f"{stem}{CITYSCAPES_COLOUR_SUFFIX}"
        if colour.is_file():
            pairs.append(Pair(sample.key, sample.image, colour))
        else:
            missing.append(colour)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UserError(f"{missing[0]}: colour label image missing for its photo{more}")
    return pairs


def list_pairs(
    data: Path | None, folder_a: Path | None, folder_b: Path | None, split: str = "train"
) -> tuple[str, list[Pair]]:
    """(layout, pairs) from `data` (an aligned or a Cityscapes root, told apart by ROOT/leftImg8bit) or from the
    two folders `folder_a` and `folder_b`; any other combination is a user error naming the flags."""
    if folder_a is not None or folder_b is not None:
        if data is not None or folder_a is None or folder_b is None:
            raise UserError("give either --data ROOT or both --folder-a DIR and --folder-b DIR")
        for flag, folder in (("--folder-a", folder_a), ("--folder-b", folder_b)):
            if not Path(folder).is_dir():
                raise UserError(f"{folder}: no such folder ({flag})")
        return "folders", folder_pairs(folder_a, folder_b)
    if data is None:
        raise UserError("no paired data: give --data ROOT (aligned or Cityscapes) or --folder-a DIR and --folder-b DIR")
    if not Path(data).is_dir():
        raise UserError(f"{data}: no such folder (--data)")
    if (Path(data) / "leftImg8bit").is_dir():
        return "cityscapes", cityscapes_pairs(data, split)
    return "aligned", aligned_pairs(data, split)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding the pixels; unreadable -> SampleError."""
    try:
        with Image.open(path) as image:
            return image.size
    except Image.DecompressionBombError:
        raise SampleError(path, "declares too many pixels to decode (a decompression bomb?)") from None
    except (OSError, ValueError, SyntaxError, struct_error) as exc:
        raise SampleError(path, f"not a readable image ({exc})") from None


def check_pairs(pairs: list[Pair], aligned: bool) -> tuple[list[Pair], int]:
    """(the pairs whose headers read, how many were skipped): an odd aligned width or two sizes in one pair is a
    UserError naming the file; an unreadable header skips its pair with one warning line."""
    usable, skipped = [], 0
    for pair in pairs:
        try:
            size_a = image_size(pair.a)
            size_b = size_a if aligned else image_size(pair.b)
        except SampleError as exc:
            log.warning("skipping pair %s: %s", pair.key, exc)
            skipped += 1
            continue
        if aligned and size_a[0] % 2:
            raise UserError(
                f"{pair.a}: width {size_a[0]} is odd; an aligned image holds A (left) and B (right) side by side, "
                "two halves of equal width"
            )
        if size_a != size_b:
            raise UserError(
                f"{pair.b}: {size_b[0]}x{size_b[1]}, but its partner {pair.a} is {size_a[0]}x{size_a[1]}; "
                "the two images of a pair must have the same size"
            )
        usable.append(pair)
    return usable, skipped


@dataclass(frozen=True)
class PairListing:
    """The usable pairs of a dataset, its layout, and how many pairs were skipped as unreadable."""

    layout: str
    pairs: list[Pair]
    skipped: int

    @property
    def aligned(self) -> bool:
        """Whether each pair is one A|B image."""
        return self.layout == "aligned"


def find_pairs(data: Path | None, folder_a: Path | None, folder_b: Path | None, split: str = "train") -> PairListing:
    """List (`list_pairs`) and check (`check_pairs`) the pairs of a dataset; none usable is a user error."""
    layout, pairs = list_pairs(data, folder_a, folder_b, split)
    usable, skipped = check_pairs(pairs, aligned=layout == "aligned")
    where = data if data is not None else f"{folder_a} + {folder_b}"
    if not usable:
        raise UserError(f"{where}: no readable image pairs ({skipped} skipped)")
    log.info("%d pairs (%s layout) in %s; %d skipped as unreadable", len(usable), layout, where, skipped)
    return PairListing(layout, usable, skipped)
