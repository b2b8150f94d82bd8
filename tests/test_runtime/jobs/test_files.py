"""runtime.jobs.files: atomic writes leave the old file or the new one, never a partial; one JSON policy."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from uda_trt.runtime.jobs.files import (
    atomic_write,
    atomic_write_bytes,
    json_plain,
    partial_path,
    remove_partials,
    write_json,
)


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    atomic_write_bytes(target, b"first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]


def test_failed_write_keeps_old_file_and_leaves_no_partial(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"first")

    def half_then_fail(handle):
        handle.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"first"
    assert not partial_path(target).exists()


def test_json_policy_writes_non_finite_as_null_and_numpy_as_numbers(tmp_path):
    payload = {
        "nan": float("nan"),
        "inf": -math.inf,
        "np_float": np.float32(0.5),
        "np_nan": np.float64("nan"),
        "np_int": np.int64(3),
        "array": np.arange(3),
        "path": Path("a/b"),
        "tuple": (1, 2),
        3: "int key",
    }
    write_json(tmp_path / "x.json", payload)
    text = (tmp_path / "x.json").read_text()
    assert "NaN" not in text and "Infinity" not in text and text.endswith("}\n")
    assert json.loads(text) == {
        "nan": None,
        "inf": None,
        "np_float": 0.5,
        "np_nan": None,
        "np_int": 3,
        "array": [0, 1, 2],
        "path": "a/b",
        "tuple": [1, 2],
        "3": "int key",
    }
    assert json_plain({"nested": [float("nan"), {"x": np.float16(1.0)}]}) == {"nested": [None, {"x": 1.0}]}


def test_remove_partials_touches_only_our_temporaries(tmp_path):
    (tmp_path / "a").mkdir()
    ours = [partial_path(tmp_path / "a" / "img.png"), partial_path(tmp_path / "report.json")]
    theirs = [tmp_path / "a" / "img.partial", tmp_path / ".hidden", tmp_path / "a" / "img.png"]
    for path in ours + theirs:
        path.write_bytes(b"x")
    assert remove_partials(tmp_path) == 2
    assert not any(path.exists() for path in ours)
    assert all(path.exists() for path in theirs)


def test_json_plain_returns_exact_builtin_types():
    """Subclasses of str, int and float (a library's version string, numpy.float64) leave as the plain types, so a
    checkpoint holding them can be read with torch.load(weights_only=True)."""

    class Version(str):
        pass

    class Count(int):
        pass

    plain = json_plain({"version": Version("2.1"), "count": Count(3), "x": np.float64(0.25), "flag": np.bool_(True)})
    assert plain == {"version": "2.1", "count": 3, "x": 0.25, "flag": True}
    assert [type(v) for v in plain.values()] == [str, int, float, bool]
