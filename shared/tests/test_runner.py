"""The shared CLI runner: one line per user error, tracebacks for bugs, signals, validators."""

from __future__ import annotations

import argparse
import errno
import math
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from medshared.errors import MedsharedError, MissingFileError
from medshared.runner import (
    Terminated,
    finite_float,
    float_range,
    int_range,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
    probability,
    run_cli,
    user_error_message,
)

_TOOL = textwrap.dedent(
    """
    import argparse, sys, time, warnings
    from medshared.errors import MedsharedError
    from medshared.runner import positive_int, probability, run_cli

    def go(args):
        if args.mode == "user":
            raise MedsharedError("in.nii.gz: corrupt header\\n(second line folded)")
        if args.mode == "bug":
            raise ZeroDivisionError("a real bug")
        if args.mode == "missing":
            open("does/not/exist.txt")
        if args.mode == "warn":
            import numpy as np
            np.log(np.zeros(3))
            np.log(np.zeros(3))
            warnings.warn("library says hi\\nwith a second line")
            print("done")
        if args.mode == "sleep":
            print("READY", flush=True)
            time.sleep(60)
        if args.mode == "many":
            for i in range(100000):
                print("line", i)
        if args.mode.startswith("swallow-"):
            # the signal's handler runs inside a finaliser / ctypes callback, where Python
            # swallows whatever it raises (as happens during numba's compilation)
            import ctypes, os, signal
            sig = signal.SIGTERM if args.mode.endswith("term") else signal.SIGINT

            def poke():
                os.kill(os.getpid(), sig)
                sum(i for i in range(1000))  # Python code: the handler runs in here

            class Finalised:
                def __del__(self):
                    poke()

            with open("partial.part", "w") as f:
                try:
                    if "-del-" in args.mode:
                        Finalised()  # dropped at once: __del__ runs and is interrupted
                    elif "-ctypes-" in args.mode:
                        ctypes.CFUNCTYPE(None)(poke)()
                    else:
                        try:
                            poke()
                        except BaseException:
                            pass  # a library that swallows everything, silently
                    for _ in range(200):
                        time.sleep(0.01)  # the re-delivered interrupt arrives here
                    print("SWALLOWED", flush=True)
                finally:
                    os.unlink("partial.part")
        if args.mode == "convert":  # a library turns the interrupt into an error of its own
            import os, signal
            with open("partial.part", "w") as f:
                try:
                    try:
                        os.kill(os.getpid(), signal.SIGTERM)
                        time.sleep(5)
                    except BaseException as exc:
                        raise RuntimeError("no compiled object yet") from exc
                finally:
                    os.unlink("partial.part")
        if args.mode == "twice":
            import os, signal
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            finally:
                os.kill(os.getpid(), signal.SIGTERM)  # a second SIGTERM during the cleanup
                sum(i for i in range(1000))
                print("CLEANED", flush=True)
        return 0

    def build():
        p = argparse.ArgumentParser(prog="tool")
        sub = p.add_subparsers(dest="cmd", required=True)
        run = sub.add_parser("run")
        run.add_argument("mode")
        run.add_argument("--size", type=positive_int, default=1, help="voxels (default 1)")
        run.add_argument("--p", type=probability, default=0.5, help="(default 0.5)")
        run.set_defaults(func=go)
        return p

    sys.exit(run_cli(build))
    """
)


@pytest.fixture(scope="module")
def tool(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("runner") / "tool.py"
    path.write_text(_TOOL)
    return path


def _run(tool: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(tool), *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_user_error_is_exactly_one_line(tool: Path) -> None:
    res = _run(tool, "run", "user")
    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        "tool: error: in.nii.gz: corrupt header (second line folded)"
    ]


def test_bug_keeps_its_traceback_and_debug_shows_user_tracebacks(tool: Path) -> None:
    res = _run(tool, "run", "bug")
    assert res.returncode == 1
    assert "Traceback" in res.stderr and "ZeroDivisionError: a real bug" in res.stderr
    res = _run(tool, "run", "user", "--debug")
    assert res.returncode == 2 and "Traceback" in res.stderr and "MedsharedError" in res.stderr


def test_missing_file_oserror_is_one_line(tool: Path, tmp_path: Path) -> None:
    res = _run(tool, "run", "missing", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.splitlines() == ["tool: error: does/not/exist.txt: no such file or folder"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "x", "--size", "0"], "argument --size: must be an integer >= 1, got '0'"),
        (["run", "x", "--size", "nan"], "argument --size: expected an integer, got 'nan'"),
        (["run", "x", "--p", "inf"], "argument --p: must be a finite number, got 'inf'"),
        (["run", "x", "--p", "1.5"], "argument --p: must be a number >= 0 and <= 1, got '1.5'"),
        (["run", "x", "--bogus"], "unrecognized arguments: --bogus"),
        ([], "the following arguments are required"),
    ],
)
def test_usage_errors_are_one_line(tool: Path, args: list[str], fragment: str) -> None:
    res = _run(tool, *args)
    assert res.returncode == 2
    assert len(res.stderr.splitlines()) == 1, res.stderr
    assert fragment in res.stderr


def test_help_and_success(tool: Path) -> None:
    res = _run(tool, "run", "--help")
    assert res.returncode == 0 and "--size" in res.stdout and "--debug" not in res.stdout
    res = _run(tool, "--help")
    assert res.returncode == 0 and "--debug" in res.stdout
    assert _run(tool, "run", "ok").returncode == 0


def test_warnings_become_single_lines_of_our_own(tool: Path) -> None:
    res = _run(tool, "run", "warn")
    assert res.returncode == 0 and res.stdout.strip() == "done"
    lines = res.stderr.splitlines()
    assert lines == [
        "tool: warning: a floating-point problem occurred in the computation (divide by zero "
        "encountered in log); some values may be NaN or infinite",
        "tool: warning: library says hi",
    ]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupts_are_one_line(tool: Path, sig, code) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(tool), "run", "sleep"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "READY"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code
    assert len(err.splitlines()) == 1 and err.startswith("tool: interrupted")


@pytest.mark.parametrize(
    ("mode", "code"),
    [
        ("swallow-del-term", 143),
        ("swallow-ctypes-term", 143),
        ("swallow-except-term", 143),
        ("swallow-del-int", 130),
        ("swallow-ctypes-int", 130),
        ("swallow-except-int", 130),
    ],
)
def test_interrupt_swallowed_anywhere_is_delivered_again(
    tool: Path, tmp_path: Path, mode: str, code: int
) -> None:
    res = _run(tool, "run", mode, cwd=tmp_path)
    assert "SWALLOWED" not in res.stdout, "the interrupt was lost"
    assert res.returncode == code, res.stderr
    assert len(res.stderr.splitlines()) == 1 and res.stderr.startswith("tool: interrupted")
    assert "Exception ignored" not in res.stderr and not list(tmp_path.iterdir())


def test_error_after_sigterm_is_the_interruption(tool: Path, tmp_path: Path) -> None:
    # the error a library raised instead of the interrupt is not a "bug": still exit 143
    res = _run(tool, "run", "convert", cwd=tmp_path)
    assert res.returncode == 143 and "Traceback" not in res.stderr and not list(tmp_path.iterdir())
    assert res.stderr.splitlines() == ["tool: interrupted (SIGTERM); partial outputs were removed"]


def test_second_sigterm_during_cleanup_is_ignored(tool: Path) -> None:
    res = _run(tool, "run", "twice")
    assert res.returncode == 143 and res.stdout == "CLEANED\n", res.stderr
    assert len(res.stderr.splitlines()) == 1


def test_other_unraisable_exceptions_still_reach_the_previous_hook(tool: Path) -> None:
    # a finaliser's ordinary error is still reported by Python's default hook
    code = (
        "import sys\n"
        "from medshared.runner import _quiet_interrupts\n"
        "seen = []\n"
        "sys.unraisablehook = _quiet_interrupts(lambda u: seen.append(u.exc_type.__name__))\n"
        "class A:\n"
        "    def __del__(self):\n"
        "        raise ValueError('x')\n"
        "A()\n"
        "print(seen)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "['ValueError']", res.stderr


def test_broken_pipe_is_quiet(tool: Path) -> None:
    cmd = f"{sys.executable} {tool} run many | head -n 1"
    res = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True,
                         timeout=60)
    assert res.stdout == "line 0\n"
    assert res.stderr == ""
    assert res.returncode == 0


def test_in_process_status_and_terminated_type() -> None:
    def build() -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(prog="t")
        p.add_argument("--n", type=positive_int, default=1)
        p.set_defaults(func=lambda a: a.n - 1)
        return p

    assert run_cli(build, ["--n", "1"]) == 0
    assert run_cli(build, ["--n", "3"]) == 2
    assert run_cli(build, ["--n", "-3"]) == 2
    assert issubclass(Terminated, KeyboardInterrupt)


# --- numeric option types --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parse", "good", "bad"),
    [
        (positive_int, [("1", 1), ("42", 42)], ["0", "-1", "1.5", "nan", "x", ""]),
        (nonneg_int, [("0", 0), ("7", 7)], ["-1", "inf", "2.0"]),
        (positive_float, [("1e-3", 1e-3), ("5", 5.0)], ["0", "-0.1", "nan", "inf", "-inf"]),
        (nonneg_float, [("0", 0.0), ("2.5", 2.5)], ["-1e-9", "nan"]),
        (finite_float, [("-3.5", -3.5), ("0", 0.0)], ["nan", "inf", "1e999", "abc"]),
        (probability, [("0", 0.0), ("1", 1.0), ("0.3", 0.3)], ["1.0001", "-0.1", "nan"]),
        (int_range(2, 4), [("2", 2), ("4", 4)], ["1", "5"]),
        (float_range(0, 1, lo_open=True, hi_open=True), [("0.5", 0.5)], ["0", "1"]),
    ],
)
def test_numeric_types(parse, good, bad) -> None:
    for text, value in good:
        assert parse(text) == value
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=repr(text).replace(".", r"\.")):
            parse(text)


def test_type_messages_state_the_rule() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"between 2 and 4, got '9'"):
        int_range(2, 4)("9")
    with pytest.raises(argparse.ArgumentTypeError, match=r"> 0 and < 1, got '1'"):
        float_range(0, 1, lo_open=True, hi_open=True)("1")
    assert math.isclose(float_range(hi=0)("-2"), -2.0)


def test_user_error_classification() -> None:
    assert user_error_message(MedsharedError("a\nb")) == "a b"
    assert user_error_message(MissingFileError("x.nii: no such file")) == "x.nii: no such file"
    assert user_error_message(OSError(errno.ENOSPC, "No space left", "o.h5")) == (
        "o.h5: no space left on the device"
    )
    assert user_error_message(IsADirectoryError(21, "Is a directory", "d")) == (
        "d: is a folder, not a file"
    )
    assert user_error_message(MemoryError()).startswith("out of memory")
    assert user_error_message(ValueError("a bug")) is None
    assert user_error_message(KeyError("k")) is None
