"""The Cityscapes label table: 19 evaluated classes, label-ID <-> train-ID lookups, colours.

The table is in docs/reference/cityscapes.md (the same as cityscapesscripts' helpers/labels.py).
Lookups are 256-entry tables so conversion is one fancy-index over a whole image.
"""

from __future__ import annotations

import numpy as np

IGNORE = 255
NUM_CLASSES = 19

# (train ID order) name, label ID, RGB colour
_TABLE = (
    ("road", 7, (128, 64, 128)),
    ("sidewalk", 8, (244, 35, 232)),
    ("building", 11, (70, 70, 70)),
    ("wall", 12, (102, 102, 156)),
    ("fence", 13, (190, 153, 153)),
    ("pole", 17, (153, 153, 153)),
    ("traffic light", 19, (250, 170, 30)),
    ("traffic sign", 20, (220, 220, 0)),
    ("vegetation", 21, (107, 142, 35)),
    ("terrain", 22, (152, 251, 152)),
    ("sky", 23, (70, 130, 180)),
    ("person", 24, (220, 20, 60)),
    ("rider", 25, (255, 0, 0)),
    ("car", 26, (0, 0, 142)),
    ("truck", 27, (0, 0, 70)),
    ("bus", 28, (0, 60, 100)),
    ("train", 31, (0, 80, 100)),
    ("motorcycle", 32, (0, 0, 230)),
    ("bicycle", 33, (119, 11, 32)),
)

CLASS_NAMES: tuple[str, ...] = tuple(name for name, _, _ in _TABLE)
TRAIN_ID_TO_LABEL_ID = np.array([label_id for _, label_id, _ in _TABLE], dtype=np.uint8)
PALETTE = np.array([colour for _, _, colour in _TABLE], dtype=np.uint8)  # 19 x 3, train-ID order

TRAIN_ID_IDENTITY = np.arange(256, dtype=np.uint8)  # train IDs read as they are
LABEL_ID_TO_TRAIN_ID = np.full(256, IGNORE, dtype=np.uint8)
LABEL_ID_TO_TRAIN_ID[TRAIN_ID_TO_LABEL_ID] = np.arange(NUM_CLASSES, dtype=np.uint8)

# train ID -> label ID for writing official-evaluator predictions; anything outside 0..18 becomes 0 (unlabeled).
_TRAIN_ID_TO_LABEL_ID_LUT = np.zeros(256, dtype=np.uint8)
_TRAIN_ID_TO_LABEL_ID_LUT[:NUM_CLASSES] = TRAIN_ID_TO_LABEL_ID

_COLOUR_LUT = np.zeros((256, 3), dtype=np.uint8)
_COLOUR_LUT[:NUM_CLASSES] = PALETTE


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map Cityscapes label IDs to train IDs 0..18; every other ID becomes IGNORE (255)."""
    return LABEL_ID_TO_TRAIN_ID[label_ids]


def train_ids_to_label_ids(train_ids: np.ndarray) -> np.ndarray:
    """Map train IDs 0..18 to label IDs; anything else becomes 0 (unlabeled), as the official tools expect."""
    return _TRAIN_ID_TO_LABEL_ID_LUT[train_ids]


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """H x W train IDs -> H x W x 3 RGB in the Cityscapes palette (ignore and unknown IDs are black)."""
    return _COLOUR_LUT[train_ids]


def colors_to_train_ids(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 RGB in the Cityscapes palette -> train IDs; colours not in the palette become IGNORE."""
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    palette_packed = (PALETTE[:, 0].astype(np.uint32) << 16) | (PALETTE[:, 1].astype(np.uint32) << 8) | PALETTE[:, 2]
    out = np.full(packed.shape, IGNORE, dtype=np.uint8)
    for train_id, value in enumerate(palette_packed):
        out[packed == value] = train_id
    return out


# The void colours of gtFine colour images that are no evaluated class (docs/reference/cityscapes.md): unlabeled and
# the other black IDs, dynamic, ground, parking, rail track, guard rail, bridge, tunnel, caravan, trailer. Polegroup
# and license plate share pole's and car's colours, so a colour decoder cannot tell them apart.
VOID_COLOURS = np.array(
    [
        (0, 0, 0),
        (111, 74, 0),
        (81, 0, 81),
        (250, 170, 160),
        (230, 150, 140),
        (180, 165, 180),
        (150, 100, 100),
        (150, 120, 90),
        (0, 0, 90),
        (0, 0, 110),
    ],
    dtype=np.uint8,
)
# Nearest-colour decoding quantises each channel to 6 bits (a 64^3 = 262,144-entry table, built once
# on first use in well under a second; decoding is then one table lookup per pixel):
# a colour moves at most 2 levels per channel, far less than the 20 levels between the closest palette colours
# (bus and train), so every palette colour decodes to its own class.
_NEAREST_BITS = 6
_NEAREST_SHIFT = 8 - _NEAREST_BITS
_nearest_lut: np.ndarray | None = None


def _nearest_colour_lut() -> np.ndarray:
    """Quantised RGB -> train ID (IGNORE for the void colours) by Euclidean distance from each bin's centre."""
    global _nearest_lut
    if _nearest_lut is None:
        levels = np.arange(1 << _NEAREST_BITS, dtype=np.int32) * (1 << _NEAREST_SHIFT) + (1 << _NEAREST_SHIFT) // 2
        r, g, b = (axis.ravel() for axis in np.meshgrid(levels, levels, levels, indexing="ij"))
        colours = np.concatenate([PALETTE, VOID_COLOURS]).astype(np.int32)
        ids = np.concatenate([np.arange(NUM_CLASSES), np.full(len(VOID_COLOURS), IGNORE)]).astype(np.uint8)
        best = np.full(r.shape, np.iinfo(np.int32).max, dtype=np.int32)
        lut = np.empty(r.shape, dtype=np.uint8)
        for colour, train_id in zip(colours, ids, strict=True):  # one pass per colour: no bins x colours array
            distance = (r - colour[0]) ** 2 + (g - colour[1]) ** 2 + (b - colour[2]) ** 2
            closer = distance < best  # strict: on a tie the earlier colour (a class before void) keeps the bin
            best[closer], lut[closer] = distance[closer], train_id
        _nearest_lut = lut
    return _nearest_lut


def nearest_colors_to_train_ids(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 RGB -> train IDs of the nearest Cityscapes colour (Euclidean in RGB) among the 19 class colours and
    the void colours; a pixel nearest a void colour becomes IGNORE.

    For label maps drawn by a model (pix2pix photo -> colour labels), whose colours are never exactly the palette's:
    exact matching (colors_to_train_ids) would count nearly every pixel as outside the classes.
    """
    rgb = np.asarray(rgb, dtype=np.uint8)
    q = rgb >> _NEAREST_SHIFT
    index = (
        (q[..., 0].astype(np.intp) << (2 * _NEAREST_BITS)) | (q[..., 1].astype(np.intp) << _NEAREST_BITS) | q[..., 2]
    )
    return _nearest_colour_lut()[index]
