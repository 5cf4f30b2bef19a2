"""Issue 8 probes on the CLI: inputs never modified, special files never replaced, numeric
options validated before any work, no hang on a FIFO, honest messages. All cheap: nothing here
allocates more than a few MB."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from wdrcodec.cli import build_parser, main


@pytest.fixture()
def npy(tmp_path, smooth_volume):
    p = tmp_path / "v.npy"
    np.save(p, smooth_volume)
    return p


@pytest.fixture()
def wdr(tmp_path, npy):
    out = tmp_path / "v.wdr"
    assert main(["encode", str(npy), str(out), "--bpv", "2", "--quiet"]) == 0
    return out


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("wdrcodec: error: ")
    for n in needles:
        assert n in err, err
    return err


def test_output_equal_to_input_is_refused(tmp_path, npy, capsys):
    before = npy.read_bytes()
    assert main(["encode", str(npy), str(npy), "--bpv", "1"]) == 2
    _one_line_error(capsys, "input")
    link = tmp_path / "hard.npy"
    os.link(npy, link)
    assert main(["encode", str(npy), str(link), "--bpv", "1"]) == 2
    _one_line_error(capsys, "same file")
    sym = tmp_path / "sym.wdr"
    sym.symlink_to(npy)
    assert main(["encode", str(npy), str(sym), "--bpv", "1"]) == 2
    _one_line_error(capsys, "symlink")
    assert npy.read_bytes() == before


def test_decode_output_equal_to_input_is_refused(wdr, capsys):
    before = wdr.read_bytes()
    assert main(["decode", str(wdr), str(wdr)]) == 2
    _one_line_error(capsys)
    assert wdr.read_bytes() == before


def test_special_files_at_the_output_are_not_replaced(tmp_path, npy, capsys):
    fifo = tmp_path / "out.wdr"
    os.mkfifo(fifo)
    assert main(["encode", str(npy), str(fifo), "--bpv", "1"]) == 2
    _one_line_error(capsys, "FIFO")
    assert fifo.is_fifo()
    target = tmp_path / "elsewhere.wdr"
    target.write_bytes(b"keep")
    link = tmp_path / "link.wdr"
    link.symlink_to(target)
    assert main(["encode", str(npy), str(link), "--bpv", "1"]) == 2
    _one_line_error(capsys, "symlink")
    assert link.is_symlink() and target.read_bytes() == b"keep"
    folder = tmp_path / "dir.wdr"
    folder.mkdir()
    assert main(["encode", str(npy), str(folder), "--bpv", "1"]) == 2
    _one_line_error(capsys, "folder")


def test_fifo_input_never_blocks(tmp_path, capsys):
    fifo = tmp_path / "x.npy"
    os.mkfifo(fifo)
    result = {}
    t = threading.Thread(
        target=lambda: result.setdefault(
            "rc", main(["encode", str(fifo), str(tmp_path / "o.wdr"), "--bpv", "1"])
        ),
        daemon=True,
    )
    t.start()
    t.join(10)
    if t.is_alive():  # unblock the reader so the test process can end, then fail
        with open(fifo, "wb"):
            pass
        pytest.fail("encode blocked on a FIFO input")
    assert result["rc"] == 2
    _one_line_error(capsys, "not a regular file")
    assert main(["decode", str(fifo), str(tmp_path / "o.npy")]) == 2
    _one_line_error(capsys, "not a regular file")


def test_missing_output_folder_is_refused_before_work(npy, tmp_path, capsys):
    assert main(["encode", str(npy), str(tmp_path / "no" / "o.wdr"), "--bpv", "1"]) == 2
    _one_line_error(capsys, "does not exist")


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["encode", "a", "b", "--bpv", "0"], "--bpv"),
        (["encode", "a", "b", "--bpv", "nan"], "--bpv"),
        (["encode", "a", "b", "--bpv", "-1"], "--bpv"),
        (["encode", "a", "b", "--psnr", "inf"], "--psnr"),
        (["encode", "a", "b", "--lossless", "--levels", "-1"], "--levels"),
        (["encode", "a", "b", "--lossless", "--levels", "13"], "--levels"),
        (["encode", "a", "b", "--lossless", "--mcpd-threshold", "-0.5"], "--mcpd-threshold"),
        (["encode", "a", "b", "--lossless", "--float-step", "0"], "--float-step"),
        (["encode", "a", "b", "--lossless", "--jobs", "0"], "--jobs"),
        (["encode", "a", "b"], "--bpv"),
        (["encode", "a", "b", "--bpv", "1", "--psnr", "40"], "at most one"),
        (["decode", "a", "b", "--max-voxels", "0"], "--max-voxels"),
        (["decode", "a", "b", "--max-memory", "-2"], "--max-memory"),
        (["decode", "a", "b", "--bpv", "0"], "--bpv"),
        (["eval", "a", "--bpv", "0,1"], "rates"),
        (["eval", "a", "--levels", "-3"], "--levels"),
    ],
)
def test_numeric_options_validated_before_any_work(argv, needle, capsys, tmp_path, monkeypatch):
    """The inputs do not even exist: a bad option must be reported first, in one line."""
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and "no such file" not in err


def test_help_states_units_and_defaults():
    enc = build_parser()._subparsers._group_actions[0].choices["encode"]
    helps = {a.dest: a.help or "" for a in enc._actions}
    for dest in ("mode", "float_step", "mcpd_threshold", "levels", "bpv", "psnr", "jobs"):
        assert "default" in helps[dest], dest
    assert "dB" in helps["psnr"] and "bits/voxel" in helps["bpv"]
    assert (
        "input units" in helps["float_step"] and "units of --mcpd-norm" in helps["mcpd_threshold"]
    )
    dec = build_parser()._subparsers._group_actions[0].choices["decode"]
    dhelp = {a.dest: a.help or "" for a in dec._actions}
    assert "GiB" in dhelp["max_memory"] and "count" in dhelp["max_voxels"]


def test_truncated_file_reports_the_unverified_tail(tmp_path, wdr, capsys):
    data = wdr.read_bytes()
    cut = tmp_path / "cut.wdr"
    cut.write_bytes(data[: len(data) - 50])
    assert main(["decode", str(cut), str(tmp_path / "c.npy")]) == 0
    cap = capsys.readouterr()
    assert "could not be verified" in cap.out and "left out" in cap.out
    assert "warning" in cap.err and "unverified tail" in cap.err
    assert main(["decode", str(cut), str(tmp_path / "t.npy"), "--trust-tail"]) == 0
    assert "WARNING" in capsys.readouterr().out


def test_memory_refusal_names_the_cli_option(tmp_path, wdr, capsys, monkeypatch):
    import medshared.io._limits as limits

    monkeypatch.setattr(limits, "available_memory", lambda: 1000)
    assert main(["decode", str(wdr), str(tmp_path / "o.npy")]) == 2
    err = _one_line_error(capsys, "--max-memory")
    assert "max_voxels" not in err and "max_memory" not in err
    assert main(["decode", str(wdr), str(tmp_path / "o.npy"), "--max-memory", "1"]) == 0
    assert main(["decode", str(wdr), str(tmp_path / "p.npy"), "--max-voxels", "100"]) == 2
    _one_line_error(capsys, "--max-voxels")


def test_float_lossless_never_claims_lossless(tmp_path, capsys):
    rng = np.random.default_rng(0)
    f = rng.normal(50, 5, (4, 16, 16)).astype(np.float32)
    src = tmp_path / "f.npy"
    np.save(src, f)
    assert main(["encode", str(src), str(tmp_path / "f.wdr"), "--lossless"]) == 0
    out = capsys.readouterr().out
    assert "max error" in out and "not bit-exact" in out and "(bit-exact)" not in out
    f[1, 2, 3] = 3e38
    np.save(src, f)
    assert main(["encode", str(src), str(tmp_path / "g.wdr"), "--lossless"]) == 2
    _one_line_error(capsys, "outlier", "--float-step")
    assert not (tmp_path / "g.wdr").exists()


def test_every_option_of_every_command_states_its_default():
    sub = build_parser()._subparsers._group_actions[0].choices
    missing = [
        (name, a.option_strings)
        for name, sp in sub.items()
        for a in sp._actions
        if a.option_strings and a.dest != "help" and "default" not in (a.help or "")
    ]
    assert missing == []
