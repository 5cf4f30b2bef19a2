"""Helpers of the adversarial CLI probes (tests/test_cli_probes.py).

Everything here is tool-agnostic: running a console script (as a subprocess or in-process
through the same ``main``), reading its stderr the way a user would, snapshotting a folder to
prove that nothing was modified, created or left behind, and writing the bad inputs the probes
feed to the tools (all tiny; a header that claims a huge shape never allocates it).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib
import io
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TIMEOUT_S = 60.0

# A tqdm progress segment (``desc: 40%|####  | 4/10 [00:01<00:02, 2.1it/s]``). Such segments are
# only ignored when they were written with a carriage return (tqdm's way of redrawing a bar);
# every other stderr line counts.
_TQDM = re.compile(r"(\d+%\|)|(\|\s*[\d.]+[kMG]?/[\d.?]+[kMG]?\s*\[)|(\d(it|s)/(s|it)\])")


@dataclass
class Outcome:
    """What one run of a command did."""

    argv: list[str]
    rc: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    peak_rss_mb: float | None = None

    @property
    def lines(self) -> list[str]:
        """The stderr lines a user reads: non-empty, tqdm carriage-return redraws removed."""
        return user_lines(self.stderr)

    def describe(self) -> str:
        return (
            f"$ {' '.join(self.argv)}\nexit {self.rc}{' (TIMED OUT)' if self.timed_out else ''}"
            f"\n--- stderr ---\n{self.stderr[-3000:]}\n--- stdout ---\n{self.stdout[-1500:]}"
        )


def user_lines(stderr: str) -> list[str]:
    """Non-empty stderr lines, ignoring tqdm bar redraws written with carriage returns."""
    kept = []
    for raw in stderr.split("\n"):
        segments = raw.split("\r")
        for seg in segments:
            if not seg.strip():
                continue
            if len(segments) > 1 and _TQDM.search(seg):
                continue
            kept.append(seg.strip())
    return kept


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


def run(
    argv: Sequence[str],
    cwd: Path,
    *,
    timeout: float = TIMEOUT_S,
    close_stdout: bool = False,
    send: tuple[float, int] | None = None,
    env: dict[str, str] | None = None,
) -> Outcome:
    """Run ``argv`` in ``cwd`` with stdin closed; never block longer than ``timeout`` seconds.

    ``close_stdout`` closes the read end of stdout at once (``| head``-style). ``send`` =
    ``(delay_s, signum)`` sends a signal after ``delay_s`` seconds. The peak resident memory of
    the child is measured with ``wait4``.
    """
    argv = [str(a) for a in argv]
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="100")
    full_env.pop("MEDSHARED_DEBUG", None)
    full_env.update(env or {})
    err_path = cwd.parent / f".probe-stderr-{os.getpid()}-{threading.get_ident()}"
    out_path = cwd.parent / f".probe-stdout-{os.getpid()}-{threading.get_ident()}"
    with open(err_path, "w+b") as err_f, open(out_path, "w+b") as out_f:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if close_stdout else out_f,
            stderr=err_f,
            env=full_env,
        )
        if close_stdout:
            proc.stdout.close()
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

        timer = threading.Timer(timeout, kill)
        timer.start()
        if send is not None:
            delay, signum = send
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signum)
        try:
            if proc.returncode is None:
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
            else:  # already reaped by poll(): it finished before the signal
                usage = None
        finally:
            timer.cancel()
        err_f.seek(0)
        out_f.seek(0)
        stderr = err_f.read().decode("utf-8", "replace")
        stdout = out_f.read().decode("utf-8", "replace")
    err_path.unlink(missing_ok=True)
    out_path.unlink(missing_ok=True)
    return Outcome(
        argv,
        None if timed_out.is_set() else proc.returncode,
        stdout,
        stderr,
        timed_out.is_set(),
        usage.ru_maxrss / 1024.0 if usage is not None else float("nan"),
    )


def run_inprocess(tool: str, argv: Sequence[str], cwd: Path) -> Outcome:
    """Run ``<tool>.cli.main(argv)`` (the console script's own entry point) in this process.

    Used for the torch-based tools, whose start-up costs seconds per subprocess; never used
    for probes that could block (FIFOs) or need signals. stdout/stderr are captured.
    """
    module = importlib.import_module(f"{tool}.cli")
    err, out = io.StringIO(), io.StringIO()
    old = Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                rc = module.main([str(a) for a in argv])
            except SystemExit as exc:  # pragma: no cover - a main that exits itself
                rc = exc.code if isinstance(exc.code, int) else 2
    finally:
        os.chdir(old)
    return Outcome([tool, *map(str, argv)], rc, out.getvalue(), err.getvalue())


class Reached(Exception):
    """Raised instead of running a command: its arguments passed parsing."""


def parse_only(tool: str, argv: Sequence[str]) -> tuple[Outcome, bool]:
    """Run the tool's runner on ``argv`` with every subcommand's handler replaced by a sentinel.

    Returns the outcome and whether parsing succeeded (the handler would have run).
    """
    from medshared.runner import run_cli

    module = importlib.import_module(f"{tool}.cli")
    reached: list[bool] = []

    def sentinel(args: object) -> int:
        reached.append(True)
        return 0

    def build():  # noqa: ANN202
        parser = module.build_parser()
        for sub in subparsers(parser).values():
            for inner in [sub, *subparsers(sub).values()]:
                if inner.get_default("func") is not None:
                    inner.set_defaults(func=sentinel)
        return parser

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = run_cli(build, list(argv))
    return Outcome([tool, *argv], rc, "", err.getvalue()), bool(reached)


def subparsers(parser) -> dict:  # noqa: ANN001
    """``{name: subparser}`` of an argparse parser (empty when it has none)."""
    import argparse

    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


# ---------------------------------------------------------------------------------------------
# Assertions
# ---------------------------------------------------------------------------------------------


def assert_one_line(out: Outcome, *, rc: int = 2, names: Sequence[str] = ()) -> str:
    """Exit ``rc``, exactly one user-visible stderr line naming one of ``names``, no traceback."""
    assert not out.timed_out, "blocked/hung (killed after the timeout)\n" + out.describe()
    assert "Traceback" not in out.stderr + out.stdout, "traceback printed\n" + out.describe()
    assert out.rc == rc, f"exit status {out.rc}, expected {rc}\n" + out.describe()
    lines = out.lines
    assert len(lines) == 1, f"{len(lines)} stderr lines, expected 1\n" + out.describe()
    line = lines[0]
    assert "[Errno" not in line and ".part" not in line, "raw OS error / temp name\n" + line
    keyword = re.search(r"\b[a-z_]+=(True|False|None)\b", line)
    assert keyword is None, f"message names a Python keyword ({keyword.group(0)}): {line!r}"
    if names:
        assert any(n in line for n in names), f"message names none of {list(names)}: {line!r}"
    return line


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: type, size, mtime and content hash (links: their target)."""
    found: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                digest = hashlib.sha1(path.read_bytes()).hexdigest()
                found[rel] = ("file", st.st_size, st.st_mtime_ns, digest, st.st_ino)
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir",)
            else:
                found[rel] = ("special", stat.S_IFMT(st.st_mode), st.st_ino)
    return found


def assert_unchanged(before: dict, root: Path) -> None:
    """Nothing under ``root`` was modified, replaced, created or removed."""
    after = snapshot(root)
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(after) & set(before) if after[k] != before[k])
    assert not (added or removed or changed), (
        f"the folder changed: added {added}, removed {removed}, modified/replaced {changed}"
    )


def leftovers(root: Path) -> list[str]:
    """Temp/staging names left under ``root`` (``.part`` files, hidden staging folders)."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if ".part" in p.name or (p.name.startswith(".") and not p.name.startswith(".probe"))
    )


# ---------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------

TEXT = b"This is a plain text file, not an image.\nline two, 1 2 3\n" * 8


def random_bytes(n: int = 4096, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def huge_nifti_gz(path: Path, shape: tuple[int, ...] = (1024, 1024, 256, 30)) -> Path:
    """A tiny ``.nii.gz`` whose header claims ``shape`` int16 (~15 GiB), with 64 data bytes."""
    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(np.int16)
    hdr.set_zooms((1.0,) * len(shape))
    hdr.set_xyzt_units("mm", "sec")
    hdr["vox_offset"] = 352
    raw = hdr.binaryblock + b"\x00" * 4 + b"\x00" * 64
    path.write_bytes(gzip.compress(raw))
    return path


def huge_nifti(path: Path, shape: tuple[int, ...] = (32767, 32767, 32767)) -> Path:
    """An uncompressed ``.nii`` header claiming ``shape`` int16 with 64 data bytes."""
    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(np.int16)
    hdr["vox_offset"] = 352
    path.write_bytes(hdr.binaryblock + b"\x00" * 4 + b"\x00" * 64)
    return path


def huge_npy(path: Path, shape: tuple[int, ...] = (1024, 1024, 256, 30)) -> Path:
    """A ``.npy`` whose header claims ``shape`` int16, followed by 64 bytes."""
    buf = io.BytesIO()
    header = {"descr": "<i2", "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    path.write_bytes(buf.getvalue() + b"\x00" * 64)
    return path


def huge_png(path: Path, width: int = 60000, height: int = 60000) -> Path:
    """A PNG whose IHDR claims ``width`` x ``height`` 8-bit grey, with one tiny IDAT."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def make_bad(kind: str, path: Path, valid: Path | None = None, other: Path | None = None) -> None:
    """Create the bad input ``kind`` at ``path`` (``valid``: a good file of the right format,
    ``other``: a good file of another format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "missing":
        return
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        data = valid.read_bytes()
        path.write_bytes(data[: max(1, len(data) // 3)])
    elif kind == "random":
        path.write_bytes(random_bytes())
    elif kind == "text":
        path.write_bytes(TEXT)
    elif kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "wrongfmt":
        path.write_bytes(other.read_bytes())
    elif kind == "huge":
        name = path.name
        if name.endswith(".nii.gz"):
            huge_nifti_gz(path)
        elif name.endswith(".nii"):
            huge_nifti(path)
        elif name.endswith(".npy"):
            huge_npy(path)
        elif name.endswith(".png"):
            huge_png(path)
        else:  # pragma: no cover - a probe table error
            raise ValueError(name)
    else:  # pragma: no cover
        raise ValueError(kind)


def place_output(kind: str, out: Path, input_path: Path | None, victim: Path) -> Path:
    """Prepare the output path ``out`` for the output probe ``kind``; returns the path to pass."""
    if kind == "same":
        return input_path
    if kind == "symlink_to_input":
        out.symlink_to(input_path)
    elif kind == "hardlink":
        os.link(input_path, out)
    elif kind == "fifo":
        os.mkfifo(out)
    elif kind == "symlink":
        victim.write_bytes(b"victim: must stay as it is\n")
        out.symlink_to(victim)
    elif kind == "folder":
        out.mkdir()
        (out / "keep.txt").write_text("keep\n")
    elif kind == "under_file":
        (out.parent / "file.txt").write_text("a regular file, not a folder\n")
        return out.parent / "file.txt" / out.name
    elif kind == "missing_parent":
        return out.parent / "no_such_folder" / out.name
    else:  # pragma: no cover
        raise ValueError(kind)
    return out


def copy_into(src: Path, dst_dir: Path, name: str | None = None) -> Path:
    """Copy a file or folder ``src`` into ``dst_dir`` (as ``name``)."""
    import shutil

    dst = dst_dir / (name or src.name)
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copyfile(src, dst)
    return dst


def wait_until(pred: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return False


SIGINT, SIGTERM = signal.SIGINT, signal.SIGTERM
PY = sys.executable
