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
