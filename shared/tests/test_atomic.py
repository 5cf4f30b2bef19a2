"""Atomic writer: temporary names, refusal of special targets, cleanup on signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from medshared.errors import MedsharedError
from medshared.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text, format_suffix


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("dect_4.95.nii.gz", ".nii.gz"),
        ("scan.nii", ".nii"),
        ("a.NPY", ".NPY"),
        ("run.v2.safetensors", ".safetensors"),
        ("metrics.jsonl", ".jsonl"),
        ("notes.v2", ""),
        ("x.95", ""),
        ("archive.tar.gz", ""),
        (".npy", ""),
    ],
)
def test_format_suffix_uses_the_known_list(name: str, suffix: str) -> None:
    assert format_suffix(name) == suffix


def test_temp_name_keeps_only_the_real_format_suffix(tmp_path: Path) -> None:
    seen = []
    for name in ("dect_4.95.nii.gz", "notes.v2"):
        with atomic_path(tmp_path / name) as tmp:
            seen.append(tmp.name)
            assert tmp.parent == tmp_path
            tmp.write_text("x")
    dect, notes = seen
    assert dect.startswith(".dect_4.95.nii.gz.") and dect.endswith(".part.nii.gz")
    assert ".95.nii.gz.part" not in dect and dect.count(".part") == 1
    assert notes.startswith(".notes.v2.") and notes.endswith(".part")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dect_4.95.nii.gz", "notes.v2"]


def test_np_save_writes_exactly_the_target(tmp_path: Path) -> None:
    out = tmp_path / "a.95.npy"
    with atomic_path(out) as tmp:
        np.save(tmp, np.arange(4))  # np.save appends .npy unless the name ends with it
    assert np.array_equal(np.load(out), np.arange(4))
    assert [p.name for p in tmp_path.iterdir()] == ["a.95.npy"]


def test_special_targets_are_refused_and_untouched(tmp_path: Path) -> None:
    fifo = tmp_path / "f.wdr"
    os.mkfifo(fifo)
    real = tmp_path / "real.txt"
    real.write_text("keep")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    folder = tmp_path / "d.json"
    folder.mkdir()
    for target, message in ((fifo, "FIFO"), (link, "symlink"), (folder, "is a folder")):
        with pytest.raises(MedsharedError, match=message):
            atomic_write_text(target, "new")
    assert fifo.is_fifo() and link.is_symlink() and folder.is_dir()
    assert real.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json", "f.wdr", "link.txt", "real.txt"]


def test_input_is_never_overwritten(tmp_path: Path) -> None:
    src = tmp_path / "s.nii.gz"
    src.write_bytes(b"input")
    with pytest.raises(MedsharedError, match="--out .*is the input"):
        atomic_write_bytes(src, b"output", inputs=[src], what="--out")
    assert src.read_bytes() == b"input"


def test_missing_folder_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MedsharedError, match="does not exist"):
        atomic_write_text(tmp_path / "no" / "x.json", "{}")


def test_target_turned_fifo_during_the_work_is_not_replaced(tmp_path: Path) -> None:
    target = tmp_path / "late.json"
    with pytest.raises(MedsharedError, match="FIFO"):
        with atomic_path(target) as tmp:
            tmp.write_text("{}")
            os.mkfifo(target)
    assert target.is_fifo()
    assert [p.name for p in tmp_path.iterdir()] == ["late.json"]


def test_mode_of_replaced_file_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "b.txt"
    target.write_text("old")
    target.chmod(0o640)
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and target.stat().st_mode & 0o777 == 0o640


_SLOW_WRITER = textwrap.dedent(
    """
    import argparse, sys, time
    from medshared.io.atomic import atomic_path
    from medshared.runner import run_cli

    def work(args):
        with atomic_path(args.out) as tmp:
            tmp.write_bytes(b"half")
            print("WRITING", flush=True)
            time.sleep(60)

    def build():
        p = argparse.ArgumentParser(prog="slow")
        p.add_argument("out")
        p.set_defaults(func=work)
        return p

    sys.exit(run_cli(build))
    """
)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_write_leaves_no_part_file(tmp_path: Path, sig, code) -> None:
    script = tmp_path / "slow.py"
    script.write_text(_SLOW_WRITER)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "dect_4.95.nii.gz"
    target.write_bytes(b"previous")
    proc = subprocess.Popen(
        [sys.executable, str(script), str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "WRITING"
        assert any(p.name.endswith(".part.nii.gz") for p in out_dir.iterdir())
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code
    assert len(err.strip().splitlines()) == 1 and "interrupted" in err
    assert [p.name for p in out_dir.iterdir()] == ["dect_4.95.nii.gz"]
    assert target.read_bytes() == b"previous"


def test_errors_name_the_target_not_the_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "x.wdr"
    with pytest.raises(OSError) as info, atomic_path(target) as tmp:
        raise OSError(28, "No space left on device", str(tmp))
    assert info.value.filename == str(target) and ".part" not in str(info.value)
    from medshared.io._checks import reraise_write_errors

    with pytest.raises(MedsharedError) as info2:
        with reraise_write_errors(target, "WDR"), atomic_path(target) as tmp:
            raise OSError(28, "No space left on device", str(tmp))
    assert str(info2.value) == f"WDR file {target}: cannot write (No space left on device)"
    assert [p.name for p in tmp_path.iterdir()] == []
