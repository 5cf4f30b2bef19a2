"""The one CLI runner every tool's ``main()`` goes through, and parse-time numeric option types.

Rules (the same for every tool)
-------------------------------
- a user error (:class:`~medshared.errors.MedsharedError` or a subclass, an ``OSError`` about a
  file the user named, a full disk, a ``MemoryError``) prints **one line**
  ``<prog>: error: <message>`` on stderr and exits 2;
- a command-line usage error (unknown option, bad value) is one line too (argparse's usage
  block is not printed; ``--help`` shows it), exit 2;
- a bug (any other exception) keeps its full traceback and exits 1;
- ``--debug`` (accepted anywhere on the command line, or ``MEDSHARED_DEBUG=1``) shows the
  traceback for every error;
- Ctrl-C (SIGINT) prints one line ``<prog>: interrupted`` and exits 130; SIGTERM raises
  :class:`Terminated` (a ``KeyboardInterrupt``) in the main thread, so every ``finally`` block
  and atomic writer cleans up, then prints one line and exits 143. A second SIGTERM during the
  cleanup is ignored. An interrupt can be swallowed before it reaches the runner: Python cannot
  raise out of a finaliser (``__del__``) or a ctypes callback (numba's and llvmlite's compiler
  run many of both), and some code clears errors or catches everything. So each interrupt the
  runner raises is watched (a weakref): freed before the runner caught it, it is delivered
  again a moment later; its "Exception ignored" report is not printed; and an error raised
  after a SIGTERM (the damage of a swallowed one) is reported as the interruption;
- a closed stdout (``| head``) ends quietly with exit 0;
- Python warnings are printed as one line ``<prog>: warning: <message>`` (no source line, each
  distinct message once); numpy's floating-point ``RuntimeWarning``\\ s become one line of our own;
  nibabel's header log lines are silenced.

Numeric options are validated when argparse parses them, before any work, with the ``type=``
callables of this module (:func:`positive_int`, :func:`nonneg_int`, :func:`positive_float`,
:func:`nonneg_float`, :func:`finite_float`, :func:`probability`, :func:`int_range`,
:func:`float_range`). NaN and infinity are always refused.

Example
-------
>>> import argparse
>>> def build() -> argparse.ArgumentParser:
...     p = argparse.ArgumentParser(prog="demo-tool")
...     p.add_argument("--size", type=positive_int, default=4, help="side (voxels, default 4)")
...     p.set_defaults(func=lambda args: 0)
...     return p
>>> run_cli(build, ["--size", "8"])
0
"""

from __future__ import annotations

import argparse
import errno
import logging
import math
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from medshared.errors import MedsharedError

__all__ = [
    "EXIT_BUG",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "EXIT_USER_ERROR",
    "Terminated",
    "finite_float",
    "float_range",
    "int_range",
    "nonneg_float",
    "nonneg_int",
    "positive_float",
    "positive_int",
    "probability",
    "run_cli",
    "user_error_message",
]

EXIT_USER_ERROR = 2
EXIT_BUG = 1
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM arrives, so ``finally`` blocks and cleanup run."""


class _Interrupt(KeyboardInterrupt):
    """The ``KeyboardInterrupt`` :func:`run_cli`'s SIGINT handler raises (a Python subclass, so
    that it can be watched like :class:`Terminated`)."""


class _SignalState:
    """What :func:`run_cli`'s signal handlers have done in this process."""

    requested = False  # a SIGTERM arrived
    propagating = False  # a Terminated is on its way up: further SIGTERMs are ignored
    caught = False  # run_cli caught the interrupt it raised (its end is not a loss)
    deferring = False  # in the unraisable hook / a watch callback: raising there is lost
    watch: Any = None  # weakref to the interrupt last raised


_STATE = _SignalState()


class _Redeliverer:
    """A daemon thread that delivers a signal to the main thread again, a moment after
    :meth:`request` (a signal tripped in the unraisable hook or in a weakref callback would be
    handled right there, and lost again). :meth:`request` only puts on a ``SimpleQueue``
    (reentrant, so safe in finalisers and weakref callbacks); the thread is started by
    :meth:`ensure` from ordinary code, before an interrupt is raised."""

    def __init__(self) -> None:
        self.queue: Any = None

    def ensure(self) -> None:
        if self.queue is not None:
            return
        import _thread
        import queue
        import threading
        import time

        q: Any = queue.SimpleQueue()

        def loop() -> None:
            while True:
                signum = q.get()
                time.sleep(0.002)
                _thread.interrupt_main(signum)

        threading.Thread(target=loop, name="medshared-redeliver", daemon=True).start()
        self.queue = q

    def request(self, signum: int) -> None:
        if self.queue is not None:
            self.queue.put(signum)


_REDELIVER = _Redeliverer()


def _raise_watched(exc: KeyboardInterrupt, signum: int) -> None:
    """Raise ``exc``, watching it: if it is freed before :func:`run_cli` caught it, something
    swallowed it (a finaliser, a ctypes callback, C code that clears errors, a bare
    ``except``), and the same signal is delivered again."""
    import weakref

    def lost(_ref: Any) -> None:
        if _STATE.caught or sys.is_finalizing():
            return
        _STATE.deferring = True
        try:
            if signum == signal.SIGTERM:
                _STATE.propagating = False  # it got nowhere: the next SIGTERM must raise
            _REDELIVER.request(signum)
        finally:
            _STATE.deferring = False

    _REDELIVER.ensure()
    _STATE.caught = False
    _STATE.watch = weakref.ref(exc, lost)
    try:
        raise exc
    finally:
        del exc  # no reference from this frame (its traceback's): a swallowed one is freed


def _on_signal(signum: int, frame: Any) -> None:  # pragma: no cover - signal path
    """SIGTERM raises :class:`Terminated` (once), SIGINT a ``KeyboardInterrupt``."""
    if _STATE.deferring:  # raising here would be lost: try again in a moment
        _REDELIVER.request(signum)
        return
    if signum != signal.SIGTERM:
        _raise_watched(_Interrupt(), signum)
    if _STATE.propagating:  # a second SIGTERM: let the cleanup the first one started finish
        return
    _STATE.requested = _STATE.propagating = True
    _raise_watched(Terminated(), signum)


def _quiet_interrupts(previous: Callable[[Any], None]) -> Callable[[Any], None]:
    """A ``sys.unraisablehook`` that prints nothing for the interrupts :func:`run_cli` raised.

    An exception raised in a finaliser (``__del__``, a weakref callback) or in a ctypes callback
    cannot propagate: Python reports it through ``sys.unraisablehook`` and goes on. A signal
    handler's interrupt lands there easily during numba compilation (llvmlite's object-cache
    callback and ``ObjectRef.__del__`` run all the time); it is delivered again when it is
    freed (:func:`_raise_watched`), so its "Exception ignored" traceback is not printed. Every
    other unraisable exception goes to ``previous``.
    """

    def hook(unraisable: Any) -> None:
        _STATE.deferring = True  # a signal handled in here waits until the hook is done
        try:
            if not isinstance(getattr(unraisable, "exc_value", None), Terminated | _Interrupt):
                previous(unraisable)
        finally:
            _STATE.deferring = False

    return hook


# ---------------------------------------------------------------------------------------------
# Parse-time numeric option types (argparse ``type=`` callables)
# ---------------------------------------------------------------------------------------------


def _parse_number(text: str, kind: type) -> int | float:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        noun = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _fmt(x: float) -> str:
    return f"{x:g}"


def int_range(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``[lo, hi]`` (either bound may be ``None``).

    >>> int_range(1, 8)("4")
    4
    """

    def parse(text: str) -> int:
        value = int(_parse_number(text, int))
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            if hi is None:
                rule = f">= {lo}"
            elif lo is None:
                rule = f"<= {hi}"
            else:
                rule = f"between {lo} and {hi}"
            raise argparse.ArgumentTypeError(f"must be an integer {rule}, got {text!r}")
        return value

    parse.__name__ = "integer"
    return parse


def float_range(
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> Callable[[str], float]:
    """An argparse type: a finite float in the interval from ``lo`` to ``hi``.

    ``lo_open``/``hi_open`` exclude the bound itself (``float_range(0, lo_open=True)`` is > 0).

    >>> float_range(0.0, 1.0)("0.25")
    0.25
    """

    def parse(text: str) -> float:
        value = float(_parse_number(text, float))
        bad_lo = lo is not None and (value <= lo if lo_open else value < lo)
        bad_hi = hi is not None and (value >= hi if hi_open else value > hi)
        if bad_lo or bad_hi:
            parts = []
            if lo is not None:
                parts.append(f"{'>' if lo_open else '>='} {_fmt(lo)}")
            if hi is not None:
                parts.append(f"{'<' if hi_open else '<='} {_fmt(hi)}")
            raise argparse.ArgumentTypeError(
                f"must be a number {' and '.join(parts)}, got {text!r}"
            )
        return value

    parse.__name__ = "number"
    return parse


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    return int_range(1)(text)


def nonneg_int(text: str) -> int:
    """An argparse type: an integer >= 0."""
    return int_range(0)(text)


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0."""
    return float_range(0.0, lo_open=True)(text)


def nonneg_float(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    return float_range(0.0)(text)


def finite_float(text: str) -> float:
    """An argparse type: any finite number (NaN and infinity refused)."""
    return float_range()(text)


def probability(text: str) -> float:
    """An argparse type: a number in [0, 1]."""
    return float_range(0.0, 1.0)(text)


for _f, _n in (
    (positive_int, "positive integer"),
    (nonneg_int, "non-negative integer"),
    (positive_float, "positive number"),
    (nonneg_float, "non-negative number"),
    (finite_float, "finite number"),
    (probability, "probability"),
):
    _f.__name__ = _n  # argparse names the type in "invalid <name> value" messages

# ---------------------------------------------------------------------------------------------
# Error classification
# ---------------------------------------------------------------------------------------------

_ERRNO_TEXT = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOMEM: "out of memory",
    errno.EIO: "input/output error (failing disk or network file system?)",
}


def user_error_message(exc: BaseException) -> str | None:
    """The one-line message for an exception that is the user's doing, or ``None`` for a bug."""
    if isinstance(exc, MedsharedError):
        return " ".join(str(exc).split("\n")) or type(exc).__name__
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError):
        name = exc.filename or ""
        reason = {
            FileNotFoundError: "no such file or folder",
            PermissionError: "permission denied",
            IsADirectoryError: "is a folder, not a file",
            NotADirectoryError: "a parent of this path is not a folder",
        }.get(type(exc), exc.strerror or str(exc))
        return f"{name}: {reason}" if name else reason
    if isinstance(exc, OSError) and exc.errno in _ERRNO_TEXT:
        reason = _ERRNO_TEXT[exc.errno]
        return f"{exc.filename}: {reason}" if exc.filename else reason
    if isinstance(exc, OSError) and exc.errno is not None and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, MemoryError):
        return "out of memory: the input is too large for this machine"
    return None


# ---------------------------------------------------------------------------------------------
# Warnings
# ---------------------------------------------------------------------------------------------

_FP_WARNINGS = ("invalid value encountered", "divide by zero", "overflow encountered",
                "underflow encountered", "Mean of empty slice", "Degrees of freedom <= 0")


class _WarningPrinter:
    """``warnings.showwarning`` replacement: one line per distinct message, our own wording."""

    def __init__(self, prog: str) -> None:
        self.prog = prog
        self.seen: set[str] = set()

    def __call__(self, message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        text = str(message).strip().splitlines()[0] if str(message).strip() else category.__name__
        if issubclass(category, RuntimeWarning) and any(k in text for k in _FP_WARNINGS):
            text = (
                f"a floating-point problem occurred in the computation ({text}); "
                "some values may be NaN or infinite"
            )
        if text in self.seen:
            return
        self.seen.add(text)
        stream = file if file is not None else sys.stderr
        try:
            stream.write(f"{self.prog}: warning: {text}\n")
        except (OSError, ValueError):
            pass


# ---------------------------------------------------------------------------------------------
# argparse: usage errors as one line
# ---------------------------------------------------------------------------------------------


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Make ``parser`` and all its subparsers print usage errors as one line (exit 2)."""
    seen: set[int] = set()
    todo = [parser]
    while todo:
        p = todo.pop()
        if id(p) in seen:
            continue
        seen.add(id(p))

        def error(message: str, _p: argparse.ArgumentParser = p) -> NoReturn:
            text = " ".join(message.split())
            sys.stderr.write(f"{_p.prog}: error: {text} (see {_p.prog} --help)\n")
            raise SystemExit(EXIT_USER_ERROR)

        p.error = error  # type: ignore[method-assign]
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())


def _add_version(parser: argparse.ArgumentParser) -> None:
    """Add ``--version`` from the installed distribution named like the program, if missing."""
    if any("--version" in a.option_strings for a in parser._actions):
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version(parser.prog)
    except (PackageNotFoundError, ValueError):
        return
    parser.add_argument("--version", action="version", version=f"{parser.prog} {ver}")


# ---------------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------------


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def run_cli(
    build_parser: Callable[[], argparse.ArgumentParser],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv`` with the parser from ``build_parser`` and run ``args.func(args)``.

    The parser's subcommands set ``func`` (``set_defaults(func=...)``) to a callable taking the
    parsed namespace and returning an exit status (``None`` means 0). ``--debug`` is added here,
    and ``--version`` when the parser lacks one and a distribution named like ``prog`` is
    installed. Returns the exit status (use ``raise SystemExit(run_cli(...))`` in ``main``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("MEDSHARED_DEBUG") == "1"
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    prog = parser.prog
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of any error (default: off)"
    )
    _add_version(parser)
    _one_line_errors(parser)
    in_main = True
    old_term: Any = None
    old_int: Any = None
    old_hook = sys.unraisablehook
    _STATE.requested = _STATE.propagating = _STATE.caught = _STATE.deferring = False
    try:
        old_term = signal.signal(signal.SIGTERM, _on_signal)
    except ValueError:  # not in the main thread (e.g. called from a test thread)
        in_main = False
    if in_main:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not if ignored
            old_int = signal.signal(signal.SIGINT, _on_signal)
        sys.unraisablehook = _quiet_interrupts(old_hook)
    printer = _WarningPrinter(prog)
    nib_logger = logging.getLogger("nibabel")
    old_level = nib_logger.level
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
        warnings.showwarning = printer
        nib_logger.setLevel(logging.CRITICAL)
        try:
            # two levels: an interrupt re-delivered while an error is being classified (the
            # inner except clauses) is still caught by the outer ones
            try:
                return _dispatch(parser, argv, debug, prog)
            except Exception:
                if not _STATE.requested:
                    raise
                # a SIGTERM arrived and the work failed afterwards: most likely the damage of
                # an interrupt swallowed inside a library (e.g. numba's "no compiled object
                # yet" after its object-code callback was interrupted), so it is reported as
                # the interruption, the cleanup having run while the error propagated
                _STATE.propagating = _STATE.caught = True  # no re-delivery from here on
                raise Terminated() from None
        except Terminated:
            _STATE.caught = True
            _say(f"{prog}: interrupted (SIGTERM); partial outputs were removed", debug)
            return EXIT_SIGTERM
        except KeyboardInterrupt:
            _STATE.caught = True
            _say(f"{prog}: interrupted; partial outputs were removed", debug)
            return EXIT_SIGINT
        finally:
            nib_logger.setLevel(old_level)
            if in_main:
                sys.unraisablehook = old_hook
                if old_term is not None:
                    signal.signal(signal.SIGTERM, old_term)
                if old_int is not None:
                    signal.signal(signal.SIGINT, old_int)


def _dispatch(parser: argparse.ArgumentParser, argv: list[str], debug: bool, prog: str) -> int:
    """Parse, run the subcommand and classify its errors (interrupts propagate)."""
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2)
            return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USER_ERROR
        func = getattr(args, "func", None)
        if func is None:
            parser.print_help(sys.stderr)
            return EXIT_USER_ERROR
        status = func(args)
        sys.stdout.flush()
        return 0 if status is None else int(status)
    except BrokenPipeError:
        # stdout went away (`| head`): stop quietly.
        _quiet_stdout()
        return 0
    except Exception as exc:  # noqa: BLE001 - the one place that classifies errors
        if _STATE.requested:
            raise  # run_cli reports it as the interruption
        message = user_error_message(exc)
        if message is None or debug:
            traceback.print_exc()
            return EXIT_USER_ERROR if message is not None else EXIT_BUG
        _say(f"{prog}: error: {message}", False)
        return EXIT_USER_ERROR


def _say(line: str, with_traceback: bool) -> None:
    if with_traceback:
        traceback.print_exc()
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
