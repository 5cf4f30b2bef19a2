"""Safe outputs: dangerous output paths are refused before any work; file sets land whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from medshared.errors import MedsharedError
from medshared.io import outputs
from medshared.io.outputs import check_output_folder, check_output_path, output_set

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) with its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# --- check_output_path -----------------------------------------------------------------------


def test_plain_new_and_existing_outputs_pass(tmp_path: Path) -> None:
    assert check_output_path(tmp_path / "new.nii.gz") == tmp_path / "new.nii.gz"
    (tmp_path / "old.json").write_text("{}")
    assert check_output_path(tmp_path / "old.json", [tmp_path / "in.nii"]).name == "old.json"


def test_output_equal_to_input_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "s.nii.gz"
    src.write_bytes(b"data")
    with pytest.raises(MedsharedError, match=r"--out .*s\.nii\.gz: is the input"):
        check_output_path(src, [src], what="--out")
    # the same file spelled differently
    with pytest.raises(MedsharedError, match="is the input"):
        check_output_path(tmp_path / "." / "s.nii.gz", [src])
    assert src.read_bytes() == b"data"


def test_hard_link_to_input_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "a.nii"
    src.write_bytes(b"x")
    link = tmp_path / "b.nii"
    os.link(src, link)
    with pytest.raises(MedsharedError, match=r"b\.nii: is the input .*a\.nii \(same file\)"):
        check_output_path(link, [src])


def test_symlinks_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "in.npy"
    src.write_bytes(b"x")
    other = tmp_path / "other.txt"
    other.write_text("keep")
    to_input = tmp_path / "to_input.npy"
    to_input.symlink_to(src)
    to_other = tmp_path / "to_other.txt"
    to_other.symlink_to(other)
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(MedsharedError, match="symlink to the input"):
        check_output_path(to_input, [src])
    for link in (to_other, dangling):
        with pytest.raises(MedsharedError, match="is a symlink; outputs are never written"):
            check_output_path(link)
    assert other.read_text() == "keep"


def test_special_files_and_folders_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "out.wdr"
    os.mkfifo(fifo)
    folder = tmp_path / "x.nii.gz"
    folder.mkdir()
    with pytest.raises(MedsharedError, match=r"--out .*out\.wdr: is a FIFO"):
        check_output_path(fifo, what="--out")
    with pytest.raises(MedsharedError, match=r"x\.nii\.gz: is a folder, not a file"):
        check_output_path(folder)
    with pytest.raises(MedsharedError, match="not a folder path"):
        check_output_path(str(tmp_path) + os.sep)
    assert fifo.exists() and folder.is_dir()


def test_bad_parent_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(MedsharedError, match=r"folder .*nodir does not exist"):
        check_output_path(tmp_path / "nodir" / "a.json", what="--json")
    afile = tmp_path / "file"
    afile.write_text("")
    with pytest.raises(MedsharedError, match="a parent of this path is not a folder|not a folder"):
        check_output_path(afile / "a.json")


@pytest.mark.skipif(IS_ROOT, reason="root may write into any folder; os.access says writable")
def test_read_only_parent_is_refused(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(MedsharedError, match="not writable"):
            check_output_path(ro / "a.json", what="--json")
        with pytest.raises(MedsharedError, match="not writable"):
            check_output_folder(ro / "maps")
    finally:
        ro.chmod(0o755)


def test_read_only_parent_check_uses_os_access(tmp_path: Path, monkeypatch) -> None:
    """As root the chmod test above is skipped; the check itself still runs (os.access)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    calls = []

    def fake_access(path, mode):  # noqa: ANN001 - what a non-root user would see
        calls.append(Path(path))
        return not (Path(path) == ro and mode & os.W_OK)

    monkeypatch.setattr(outputs.os, "access", fake_access)
    try:
        with pytest.raises(MedsharedError, match=r"folder .*ro is not writable"):
            check_output_path(ro / "a.json")
    finally:
        ro.chmod(0o755)
    assert ro in calls


# --- check_output_folder -------------------------------------------------------------------


def test_output_folder_holding_an_input_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    series = d / "cbf.nii.gz"
    series.write_bytes(b"4D series")
    with pytest.raises(MedsharedError, match=r"--out .*cbf\.nii\.gz: is the input"):
        check_output_folder(d, ["cbv.nii.gz", "cbf.nii.gz"], [series])
    assert series.read_bytes() == b"4D series"


def test_output_folder_problems(tmp_path: Path) -> None:
    o = tmp_path / "o"
    o.mkdir()
    (o / "mtt.nii.gz").mkdir()
    os.mkfifo(o / "tmax.nii.gz")
    with pytest.raises(MedsharedError, match=r"mtt\.nii\.gz: is a folder"):
        check_output_folder(o, ["cbf.nii.gz", "mtt.nii.gz"])
    with pytest.raises(MedsharedError, match=r"tmax\.nii\.gz: is a FIFO"):
        check_output_folder(o, ["tmax.nii.gz"])
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(MedsharedError, match="is a file, not a folder"):
        check_output_folder(afile)
    with pytest.raises(MedsharedError, match="does not exist"):
        check_output_folder(tmp_path / "x" / "y")
    with pytest.raises(MedsharedError, match="not a plain file name"):
        check_output_folder(o, ["../escape.txt"])
    assert check_output_folder(tmp_path / "new", ["a", "b"]) == tmp_path / "new"


# --- output_set ----------------------------------------------------------------------------


def test_output_set_new_folder_appears_whole(tmp_path: Path) -> None:
    target = tmp_path / "maps"
    with output_set(target, ["a.txt", "b.txt"]) as stage:
        assert stage.parent == tmp_path and stage.name.startswith(".maps.staging-")
        (stage / "a.txt").write_text("1")
        assert not target.exists()
        (stage / "b.txt").write_text("2")
    assert _tree(target) == {"a.txt": b"1", "b.txt": b"2"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maps"]
    assert target.stat().st_mode & 0o777 == 0o777 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_output_set_existing_folder_replaces_files_and_keeps_others(tmp_path: Path) -> None:
    target = tmp_path / "maps"
    target.mkdir()
    (target / "a.txt").write_text("old a")
    (target / "keep.txt").write_text("untouched")
    with output_set(target, ["a.txt", "b.txt"]) as stage:
        (stage / "a.txt").write_text("new a")
        (stage / "b.txt").write_text("new b")
    assert _tree(target) == {"a.txt": b"new a", "b.txt": b"new b", "keep.txt": b"untouched"}


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
@pytest.mark.parametrize("existing", [False, True])
def test_output_set_failure_leaves_nothing(tmp_path: Path, exc: BaseException, existing) -> None:
    target = tmp_path / "maps"
    if existing:
        target.mkdir()
        (target / "a.txt").write_text("old a")
    before = _tree(tmp_path)
    with pytest.raises(type(exc)), output_set(target, ["a.txt", "b.txt"]) as stage:
        (stage / "a.txt").write_text("new a")
        raise exc
    assert _tree(tmp_path) == before
    assert target.exists() == existing
    if existing:
        assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    assert [p.name for p in tmp_path.iterdir()] == (["maps"] if existing else [])


def test_output_set_rolls_back_when_a_rename_fails(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "maps"
    target.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (target / name).write_text(f"old {name}")
    before = _tree(target)
    real_replace = os.replace
    calls = {"n": 0}

    def flaky_replace(src, dst):  # noqa: ANN001
        calls["n"] += 1
        if Path(dst) == target / "c.txt" and Path(src).parent.name != ".backup":
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(outputs.os, "replace", flaky_replace)
    with pytest.raises(OSError, match="No space"), output_set(target, before) as stage:
        for name in before:
            (stage / name).write_text(f"new {name}")
    monkeypatch.setattr(outputs.os, "replace", real_replace)
    assert _tree(target) == before
    assert calls["n"] > 3  # a and b had been moved in before c failed


def test_output_set_revalidates_at_commit(tmp_path: Path) -> None:
    target = tmp_path / "maps"
    target.mkdir()
    with pytest.raises(MedsharedError, match=r"b\.txt: is a folder"):
        with output_set(target, ["a.txt"]) as stage:
            (stage / "a.txt").write_text("1")
            (stage / "b.txt").write_text("2")  # not announced, and a folder appears there
            (target / "b.txt").mkdir()
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]


def test_output_set_refuses_before_the_body_runs(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    series = d / "cbf.nii.gz"
    series.write_bytes(b"4D")
    ran = []
    with pytest.raises(MedsharedError, match="is the input"):
        with output_set(d, ["cbf.nii.gz"], [series]):
            ran.append(1)
    assert not ran and sorted(p.name for p in d.iterdir()) == ["cbf.nii.gz"]


# --- signals mid-write (subprocess through the CLI runner) ----------------------------------

_WRITER = textwrap.dedent(
    """
    import argparse, sys, time
    from pathlib import Path
    from medshared.io.outputs import output_set
    from medshared.runner import run_cli

    def work(args):
        with output_set(args.out, [f"m{i}.txt" for i in range(5)]) as stage:
            for i in range(5):
                (stage / f"m{i}.txt").write_text(str(i))
                if i == 2:
                    print("WRITING", flush=True)
                    time.sleep(60)

    def build():
        p = argparse.ArgumentParser(prog="writer")
        p.add_argument("out")
        p.set_defaults(func=work)
        return p

    sys.exit(run_cli(build))
    """
)


@pytest.mark.parametrize(
    ("sig", "code", "existing"), [(signal.SIGTERM, 143, True), (signal.SIGINT, 130, False)]
)
def test_signal_mid_set_leaves_no_partial_set(tmp_path: Path, sig, code, existing) -> None:
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    work = tmp_path / "work"
    work.mkdir()
    target = work / "maps"
    if existing:
        target.mkdir()
        (target / "m0.txt").write_text("old")
    before = _tree(work)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "WRITING"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code
    assert err.strip().count("\n") == 0 and "interrupted" in err
    assert _tree(work) == before
    assert not any(".staging-" in p.name for p in work.rglob("*"))


def test_fifo_output_never_blocks(tmp_path: Path) -> None:
    """Refusing a FIFO must not open it (opening a FIFO for writing blocks without a reader)."""
    fifo = tmp_path / "o.json"
    os.mkfifo(fifo)
    t0 = time.perf_counter()
    with pytest.raises(MedsharedError, match="FIFO"):
        check_output_path(fifo)
    assert time.perf_counter() - t0 < 1.0


# --- the input side (medshared.io._checks) ---------------------------------------------------


def test_inputs_are_checked_without_opening(tmp_path: Path) -> None:
    from medshared.errors import MissingFileError
    from medshared.io._checks import check_input_file, check_input_path

    fifo = tmp_path / "in.nii.gz"
    os.mkfifo(fifo)
    folder = tmp_path / "x.npy"
    folder.mkdir()
    t0 = time.perf_counter()
    with pytest.raises(MedsharedError, match=r"in\.nii\.gz: is a FIFO \(named pipe\), not a reg"):
        check_input_file(fifo, (".nii.gz",), "NIfTI")
    assert time.perf_counter() - t0 < 1.0
    with pytest.raises(MedsharedError, match=r"x\.npy: is a folder, not a file"):
        check_input_file(folder, (".npy",), ".npy")
    with pytest.raises(FileNotFoundError, match="no such file"):
        check_input_file(tmp_path / "gone.npy", (".npy",), ".npy")
    with pytest.raises(MissingFileError, match="broken symlink"):
        (tmp_path / "dangling.npy").symlink_to(tmp_path / "nowhere.npy")
        check_input_file(tmp_path / "dangling.npy", (".npy",), ".npy")
    with pytest.raises(MedsharedError, match="is a file, not a folder"):
        (tmp_path / "f").write_text("")
        check_input_path(tmp_path / "f", "DICOM", folder=True)
    assert check_input_path(folder, "DICOM", folder=True) == folder


def test_readers_refuse_a_fifo_input_at_once(tmp_path: Path) -> None:
    from medshared.io import read_hdf5, read_nifti

    for name, reader in (("a.nii", read_nifti), ("a.h5", read_hdf5)):
        fifo = tmp_path / name
        os.mkfifo(fifo)
        t0 = time.perf_counter()
        with pytest.raises(MedsharedError, match="FIFO"):
            reader(fifo)
        assert time.perf_counter() - t0 < 2.0


@pytest.mark.skipif(IS_ROOT, reason="root reads any file")
def test_unreadable_input_is_a_permission_error(tmp_path: Path) -> None:
    from medshared.io._checks import check_input_file

    f = tmp_path / "a.npy"
    f.write_bytes(b"x")
    f.chmod(0)
    try:
        with pytest.raises(PermissionError, match="permission denied"):
            check_input_file(f, (".npy",), ".npy")
    finally:
        f.chmod(0o644)


def test_output_set_with_sub_folders(tmp_path: Path) -> None:
    target = tmp_path / "dataset"
    with output_set(target) as stage:
        (stage / "train").mkdir()
        (stage / "train" / "0.h5").write_bytes(b"x")
    assert _tree(target) == {"train/0.h5": b"x"}
    with pytest.raises(MedsharedError, match="never merged"), output_set(target) as stage:
        (stage / "train").mkdir()
        (stage / "new.txt").write_text("n")
    assert _tree(target) == {"train/0.h5": b"x"}
    with output_set(target) as stage:
        (stage / "val").mkdir()
        (stage / "val" / "1.h5").write_bytes(b"y")
    assert _tree(target) == {"train/0.h5": b"x", "val/1.h5": b"y"}
    assert sorted(p.name for p in target.iterdir()) == ["train", "val"]


def test_sockets_are_refused_as_input_and_output() -> None:
    import socket
    import tempfile

    from medshared.io._checks import check_input_file

    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:  # short path: AF_UNIX limit
        path = Path(tmp) / "s.npy"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(path))
            with pytest.raises(MedsharedError, match="is a socket, not a regular file"):
                check_input_file(path, (".npy",), ".npy")
            with pytest.raises(MedsharedError, match="is a socket, not a regular file"):
                check_output_path(path)
        finally:
            sock.close()
