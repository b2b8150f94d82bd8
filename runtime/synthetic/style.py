"""The two appearances of synthetic scenes: a GTA5-like source style and a Cityscapes-like target style.

A style turns a scene's maps (label IDs, material, tone) into an RGB image and never touches the labels, so both
domains share the scene generator and its layout statistics and differ only in what a camera records. The parameters
are fixed once, here, in frozen dataclasses and documented in docs/synthetic-data.md; they are not tuned to make
adaptation look good. Every class keeps its shape, context and (target) texture, but the per-class colours differ
between styles, as GTA5's saturated game palette differs from Cityscapes' grey-green street photographs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from uda_trt.runtime.synthetic.scene import MAT_BRIGHT, MAT_DARK, MAT_GLASS, MAT_SKIN

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Style:
    """How a domain looks. Colours are sRGB 0..255; fractions are of the image height unless stated."""

    name: str
    class_colors: tuple[tuple[int, tuple[RGB, ...]], ...]  # label ID -> candidate colours; a region's tone picks one
    tone_brightness: float  # +- relative brightness spread of regions within one colour
    glass: RGB  # windows, windscreens
    bright: RGB  # lane markings, lamps, sign symbols
    skin: RGB
    dark_factor: float  # tyres, trunks, trousers, fence posts: the base colour times this
    texture_strength: float  # multiplies CLASS_TEXTURE (0 = flat colours)
    saturation: float  # 1 keeps colours, < 1 moves them toward grey
    tint: tuple[float, float, float]  # per-channel gain (colour cast)
    gamma: float  # applied to 0..1 intensities; > 1 darkens the mid-tones
    exposure_jitter: float  # std of the per-image log exposure
    light_gradient: float  # brightness gain from the bottom edge (-g/2) to the top edge (+g/2)
    vignetting: float  # relative darkening at the image corners
    blur_sigma: float  # Gaussian optical blur, as a fraction of the image height
    noise_std: float  # sensor noise, grey levels (0..255), per pixel, shared by the channels
    chroma_noise_std: float  # sensor noise, grey levels, independent per channel


# Texture amplitudes per label ID: (fine grain, coarse blotches) as relative brightness.
CLASS_TEXTURE: dict[int, tuple[float, float]] = {
    7: (0.07, 0.10),  # road: asphalt grain and patches
    8: (0.06, 0.08),  # sidewalk
    11: (0.05, 0.10),  # building
    12: (0.06, 0.10),  # wall
    13: (0.08, 0.05),  # fence
    17: (0.03, 0.03),  # pole
    19: (0.03, 0.02),  # traffic light
    20: (0.03, 0.02),  # traffic sign
    21: (0.20, 0.15),  # vegetation: leaves
    22: (0.12, 0.14),  # terrain: grass
    23: (0.01, 0.06),  # sky: soft clouds
    24: (0.05, 0.03),
    25: (0.05, 0.03),
    26: (0.03, 0.03),
    27: (0.04, 0.04),
    28: (0.04, 0.04),
    33: (0.03, 0.02),
}
COARSE_CELL = 1.0 / 12.0  # blotch size of the coarse texture, fraction of the image height

SOURCE_STYLE = Style(
    name="gta5",
    class_colors=(
        (7, ((96, 92, 112), (110, 104, 122))),  # road: clean bluish-purple asphalt
        (8, ((205, 180, 150), (190, 160, 125))),  # sidewalk: warm sandstone
        (11, ((205, 125, 80), (230, 205, 155), (150, 170, 210), (235, 232, 222), (180, 90, 70))),  # building
        (12, ((190, 160, 120), (215, 200, 170))),  # wall
        (13, ((160, 115, 70), (200, 200, 205))),  # fence: wood or metal
        (17, ((95, 95, 110), (140, 140, 150))),  # pole
        (19, ((210, 175, 40), (60, 60, 60))),  # traffic light: yellow or black housings
        (20, ((225, 35, 35), (35, 90, 220), (245, 205, 20), (30, 150, 60))),  # traffic sign
        (21, ((55, 170, 40), (95, 195, 45), (40, 140, 60))),  # vegetation: vivid greens
        (22, ((150, 205, 70), (195, 175, 110))),  # terrain: bright grass, dry earth
        (23, ((95, 165, 245), (125, 185, 250))),  # sky: saturated clear blue
        (24, ((220, 40, 40), (40, 80, 210), (240, 210, 40), (240, 240, 240), (40, 160, 80), (230, 120, 30))),
        (25, ((220, 40, 40), (40, 80, 210), (240, 210, 40), (30, 30, 30))),
        (26, ((205, 30, 30), (30, 60, 205), (240, 240, 240), (25, 25, 30), (235, 195, 20), (40, 145, 60))),
        (27, ((225, 225, 215), (210, 125, 40))),
        (28, ((245, 200, 40), (50, 120, 205))),
        (33, ((210, 40, 40), (35, 35, 35), (40, 110, 210))),
    ),
    tone_brightness=0.12,
    glass=(70, 130, 200),
    bright=(245, 245, 240),
    skin=(225, 170, 130),
    dark_factor=0.3,
    texture_strength=0.25,
    saturation=1.15,
    tint=(1.0, 1.0, 1.0),
    gamma=0.95,
    exposure_jitter=0.04,
    light_gradient=0.0,
    vignetting=0.0,
    blur_sigma=0.0,
    noise_std=0.0,
    chroma_noise_std=0.0,
)

TARGET_STYLE = Style(
    name="cityscapes",
    class_colors=(
        (7, ((80, 82, 78), (95, 95, 90))),  # road: dark grey, slightly green
        (8, ((140, 135, 128), (120, 118, 115))),  # sidewalk: grey paving
        (11, ((120, 115, 105), (150, 140, 125), (95, 95, 95), (170, 165, 150), (125, 100, 85))),  # building
        (12, ((130, 125, 115), (105, 105, 100))),  # wall
        (13, ((110, 105, 95), (140, 140, 135))),  # fence
        (17, ((85, 90, 88), (120, 120, 115))),  # pole
        (19, ((45, 48, 45), (70, 72, 68))),  # traffic light: dark housings
        (20, ((170, 90, 85), (90, 105, 145), (190, 180, 140), (150, 150, 145))),  # traffic sign: faded
        (21, ((75, 95, 55), (95, 110, 70), (60, 80, 50))),  # vegetation: dark olive
        (22, ((115, 125, 85), (125, 120, 95))),  # terrain: dull grass
        (23, ((200, 210, 215), (175, 190, 200))),  # sky: overcast pale grey-blue
        (24, ((40, 40, 45), (75, 70, 65), (115, 105, 95), (60, 70, 90), (150, 145, 140), (95, 60, 55))),
        (25, ((40, 40, 45), (75, 70, 65), (60, 70, 90), (110, 100, 90))),
        (26, ((60, 62, 65), (120, 122, 125), (185, 187, 188), (30, 32, 35), (85, 80, 72), (110, 45, 40))),
        (27, ((150, 150, 145), (95, 100, 105))),
        (28, ((175, 180, 170), (200, 200, 190))),
        (33, ((40, 40, 40), (75, 75, 80), (100, 60, 55))),
    ),
    tone_brightness=0.18,
    glass=(50, 58, 62),
    bright=(200, 202, 195),
    skin=(170, 135, 115),
    dark_factor=0.4,
    texture_strength=1.0,
    saturation=0.6,
    tint=(0.95, 1.03, 0.97),
    gamma=1.15,
    exposure_jitter=0.12,
    light_gradient=0.25,
    vignetting=0.35,
    blur_sigma=0.006,
    noise_std=3.0,
    chroma_noise_std=1.5,
)

STYLES = {SOURCE_STYLE.name: SOURCE_STYLE, TARGET_STYLE.name: TARGET_STYLE}


@lru_cache(maxsize=4)
def _colour_lut(style: Style) -> np.ndarray:
    """256 labels x 256 tones x 3 float32 colours (0..1): a region's tone picks a candidate and a brightness."""
    lut = np.full((256, 256, 3), 0.5, np.float32)
    tones = np.arange(256)
    for label, candidates in style.class_colors:
        n = len(candidates)
        pick = tones * n // 256
        within = (tones * n % 256) / 255.0 - 0.5  # position inside the candidate's bin, -0.5..0.5
        gain = 1.0 + 2.0 * style.tone_brightness * within
        lut[label] = np.asarray(candidates, np.float32)[pick] / 255.0 * gain[:, None]
    return lut


@lru_cache(maxsize=1)
def _texture_luts() -> tuple[np.ndarray, np.ndarray]:
    fine, coarse = np.zeros(256, np.float32), np.zeros(256, np.float32)
    for label, (f, c) in CLASS_TEXTURE.items():
        fine[label], coarse[label] = f, c
    return fine, coarse


def _coarse_noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth blotches about COARSE_CELL * height across, resolution independent."""
    cells = max(2, round(1.0 / COARSE_CELL))
    grid = rng.standard_normal((cells + 1, max(2, round(cells * width / height)) + 1)).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def apply_style(
    label_ids: np.ndarray,
    style: Style,
    rng: np.random.Generator,
    material: np.ndarray | None = None,
    tone: np.ndarray | None = None,
) -> np.ndarray:
    """Colour a label map in `style`: H x W uint8 label IDs -> H x W x 3 uint8 RGB.

    `material` and `tone` (from `scene.draw_scene`) add windows, tyres, markings and per-object colour
    variation; without them every region gets the middle tone and no details. `rng` drives texture, exposure and
    noise, so the same scene can be rendered many times.
    """
    height, width = label_ids.shape
    tone = np.full_like(label_ids, 128) if tone is None else tone
    rgb = _colour_lut(style)[label_ids, tone]  # H x W x 3 float32, 0..1
    if material is not None:
        gain = (1.0 + style.tone_brightness * (tone.astype(np.float32) / 127.5 - 1.0))[..., None]
        for code, colour in ((MAT_GLASS, style.glass), (MAT_BRIGHT, style.bright), (MAT_SKIN, style.skin)):
            mask = material == code
            rgb[mask] = np.asarray(colour, np.float32) / 255.0 * gain[mask]
        rgb[material == MAT_DARK] *= style.dark_factor
    if style.texture_strength > 0:
        fine_lut, coarse_lut = _texture_luts()
        fine = rng.standard_normal((height, width), dtype=np.float32)
        texture = fine_lut[label_ids] * fine + coarse_lut[label_ids] * _coarse_noise(rng, height, width)
        rgb *= (1.0 + style.texture_strength * texture)[..., None]
    rgb *= _lighting(style, rng, height, width)[..., None]
    grey = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    rgb = grey[..., None] + style.saturation * (rgb - grey[..., None])
    rgb *= np.asarray(style.tint, np.float32)
    rgb = np.clip(rgb, 0.0, 1.0) ** style.gamma * 255.0
    if style.blur_sigma > 0:
        rgb = cv2.GaussianBlur(rgb, (0, 0), style.blur_sigma * height)
    if style.noise_std > 0 or style.chroma_noise_std > 0:
        rgb += style.noise_std * rng.standard_normal((height, width, 1), dtype=np.float32)
        rgb += style.chroma_noise_std * rng.standard_normal((height, width, 3), dtype=np.float32)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def _lighting(style: Style, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Per-pixel gain: random exposure, a top-to-bottom gradient, and vignetting."""
    exposure = float(np.exp(rng.normal(0.0, style.exposure_jitter)))
    y = (np.arange(height, dtype=np.float32) + 0.5) / height
    x = (np.arange(width, dtype=np.float32) + 0.5) / width
    gain = exposure * (1.0 + style.light_gradient * (0.5 - y))[:, None] * np.ones((1, width), np.float32)
    if style.vignetting > 0:
        r2 = ((x - 0.5) ** 2)[None, :] + ((y - 0.5) ** 2)[:, None]
        gain *= 1.0 - style.vignetting * r2 / 0.5
    return gain
