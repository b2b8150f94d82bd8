"""Tiny real image files in the GTA5 and Cityscapes layouts and pix2pix's paired layouts (helpers.datasets) for the
training tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers import write_cityscapes, write_gta5, write_paired_layouts


@pytest.fixture
def tiny_gta5(tmp_path: Path) -> Path:
    """ROOT/images/NNNNN.png (48x27, GTA5's aspect) with palette labels beside: three images."""
    return write_gta5(tmp_path / "gta5", count=3, size=(48, 27), seed=1)


@pytest.fixture
def tiny_cityscapes(tmp_path: Path) -> Path:
    """ROOT/leftImg8bit/train/{city}/*_leftImg8bit.png (64x32, 2:1) in two cities, two images each."""
    root = tmp_path / "cityscapes"
    write_cityscapes(root, cities={"aachen": 2, "bochum": 2}, size=(64, 32), seed=2, split="train")
    return root


@pytest.fixture(scope="session")
def paired_layouts(tmp_path_factory) -> dict[str, Path]:
    """Four 64x32 photo / colour-label pairs in each pix2pix layout (helpers.write_paired_layouts); never modified."""
    return write_paired_layouts(tmp_path_factory.mktemp("paired"), count=4, size=(64, 32))


@pytest.fixture
def one_thread():
    """One torch thread while the test runs: the machine's two cores are shared, tiny models gain nothing from more,
    and CPU runs repeat bit for bit only at the thread count they recorded."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
