"""Engine profile ranges and the export-trt flags that set them (the build itself runs only on a GPU)."""

from __future__ import annotations

import pytest

from uda_trt.export.engine import SEGMENTER_SIZES, Profile, default_profile
from uda_trt.runtime.errors import UserError


def test_translator_profile_is_the_working_size_at_every_point():
    profile = default_profile("translate", (1024, 512))
    assert profile == Profile(min=(1, 512, 1024, 3), opt=(4, 512, 1024, 3), max=(8, 512, 1024, 3))
    assert profile.to_dict() == {"min": [1, 512, 1024, 3], "opt": [4, 512, 1024, 3], "max": [8, 512, 1024, 3]}


def test_segmenter_profile_spans_full_resolution_inputs():
    profile = default_profile("segment", None, batch=(1, 1, 2))
    (min_w, min_h), (opt_w, opt_h), (max_w, max_h) = SEGMENTER_SIZES
    assert profile.min == (1, min_h, min_w, 3) and profile.opt == (1, opt_h, opt_w, 3)
    assert profile.max == (2, max_h, max_w, 3) and profile.max[1:3] == (1024, 2048)


def test_explicit_sizes_and_bad_ranges():
    sizes = ((512, 256), (1024, 512), (2048, 1024))
    assert default_profile("translate", (1024, 512), (1, 2, 4), sizes).max == (4, 1024, 2048, 3)
    with pytest.raises(UserError, match="engine profile width: need 1 <= min <= opt <= max, got 1024, 512, 2048"):
        default_profile("segment", None, (1, 1, 1), ((1024, 256), (512, 512), (2048, 1024)))
    with pytest.raises(UserError, match="engine profile batch"):
        default_profile("translate", (64, 32), (4, 2, 8))


def test_bad_batch_flag_is_one_line(tmp_path, cli):
    checkpoint = tmp_path / "latest_net_G_A.pth"
    checkpoint.write_bytes(b"unused: the flag is refused before the checkpoint is read")
    for value in ("1,4", "8,4,1", "a,b,c"):
        result = cli("export-trt", checkpoint, "--batch", value)
        assert result.returncode == 2 and "--batch" in result.stderr and "Traceback" not in result.stderr
