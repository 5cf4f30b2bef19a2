"""Many inputs in one process (issue 12): folders, globs, --out-dir, --jobs, per-file errors."""

from __future__ import annotations

import numpy as np
import pytest

from wdrcodec.cli import main


@pytest.fixture()
def inputs(tmp_path, smooth_volume):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        np.save(src / f"v{i}.npy", np.roll(smooth_volume, i, axis=2))
    return src


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_encode_and_decode_many(tmp_path, inputs, smooth_volume, jobs, capsys):
    enc, dec = tmp_path / "enc", tmp_path / "dec"
    enc.mkdir()
    dec.mkdir()
    assert main(["encode", str(inputs), "--out-dir", str(enc), "--lossless", "--jobs", jobs]) == 0
    assert "3 of 3 files done" in capsys.readouterr().out
    assert sorted(p.name for p in enc.iterdir()) == ["v0.wdr", "v1.wdr", "v2.wdr"]
    pattern = str(enc / "v*.wdr")  # a glob the shell did not expand
    assert main(["decode", pattern, "--out-dir", str(dec), "--format", "npy", "--jobs", jobs]) == 0
    for i in range(3):
        np.testing.assert_array_equal(np.load(dec / f"v{i}.npy"), np.roll(smooth_volume, i, axis=2))


def test_one_bad_file_does_not_stop_the_batch(tmp_path, inputs, capsys):
    (inputs / "broken.npy").write_bytes(b"not an array")
    out = tmp_path / "out"
    out.mkdir()
    assert main(["encode", str(inputs), "--out-dir", str(out), "--bpv", "2"]) == 2
    cap = capsys.readouterr()
    assert "broken.npy" in cap.err and "Traceback" not in cap.err
    assert "3 of 4 files done" in cap.out
    assert sorted(p.name for p in out.iterdir()) == ["v0.wdr", "v1.wdr", "v2.wdr"]


def test_clashing_outputs_are_refused_before_work(tmp_path, inputs, capsys):
    other = tmp_path / "other"
    other.mkdir()
    np.save(other / "v0.npy", np.zeros((2, 8, 8), np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    argv = ["encode", str(inputs / "v0.npy"), str(other / "v0.npy"), "--out-dir", str(out)]
    assert main([*argv, "--bpv", "1"]) == 2
    assert "would both be written" in capsys.readouterr().err
    assert not any(out.iterdir())
    assert main(["encode", str(inputs / "v0.npy"), "x", "y", "--bpv", "1"]) == 2
    assert "--out-dir" in capsys.readouterr().err
