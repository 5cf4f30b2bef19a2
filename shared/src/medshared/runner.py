"""The one CLI runner every tool's ``main()`` goes through.

Rules (the same for every tool):

- a user error (:class:`~medshared.errors.MedsharedError` or a subclass, or an ``OSError`` about a
  file the user named) prints **one line** ``<prog>: error: <message>`` on stderr and exits 2;
- a bug (any other exception) keeps its full traceback and exits 1;
- ``--debug`` (accepted anywhere on the command line) shows the traceback for every error;
- Ctrl-C (SIGINT) and SIGTERM print one line ``<prog>: interrupted`` and exit 130 / 143, after
  every ``finally`` block ran (temporary files of the atomic writers are removed);
- a closed stdout (``| head``) ends quietly with exit 0;
- Python warnings are printed as one line ``<prog>: warning: <message>`` (no source line), and
  nibabel's header log lines are silenced.

Example
-------
>>> import argparse
>>> def build() -> argparse.ArgumentParser:
...     p = argparse.ArgumentParser(prog="demo-tool")
...     p.set_defaults(func=lambda args: 0)
...     return p
>>> run_cli(build, [])
0
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from medshared.errors import MedsharedError

EXIT_USER_ERROR = 2
EXIT_BUG = 1
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM arrives, so ``finally`` blocks and cleanup run."""


def _on_sigterm(signum: int, frame: Any) -> None:  # pragma: no cover - signal path
    raise Terminated()


def _format_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    return f"{_PROG}: warning: {message}\n"


_PROG = "medshared"


def user_error_message(exc: BaseException) -> str | None:
    """The one-line message for an exception that is the user's doing, or ``None`` for a bug."""
    if isinstance(exc, MedsharedError):
        return str(exc)
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError):
        name = exc.filename or ""
        reason = {
            FileNotFoundError: "no such file or folder",
            PermissionError: "permission denied",
            IsADirectoryError: "is a folder, not a file",
            NotADirectoryError: "a parent of this path is not a folder",
        }.get(type(exc), exc.strerror or str(exc))
        return f"{name}: {reason}" if name else str(exc)
    if isinstance(exc, OSError) and exc.errno is not None and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, MemoryError):
        return "out of memory: the input is too large for this machine"
    return None


def run_cli(
    build_parser: Callable[[], argparse.ArgumentParser],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv`` with the parser from ``build_parser`` and run ``args.func(args)``.

    The parser's subcommands set ``func`` (``set_defaults(func=...)``) to a callable taking the
    parsed namespace and returning an exit status (``None`` means 0). ``--debug`` is added here.
    Returns the exit status (use ``raise SystemExit(run_cli(...))`` in ``main``).
    """
    global _PROG
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("MEDSHARED_DEBUG") == "1"
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    _PROG = parser.prog
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of any error"
    )
    old_handler = None
    try:
        old_handler = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not in the main thread (e.g. called from a test thread)
        old_handler = None
    old_format = warnings.formatwarning
    warnings.formatwarning = _format_warning
    logging.getLogger("nibabel").setLevel(logging.ERROR)
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2)
            return int(exc.code or 0)
        func = getattr(args, "func", None)
        if func is None:
            parser.print_help(sys.stderr)
            return EXIT_USER_ERROR
        status = func(args)
        sys.stdout.flush()
        return 0 if status is None else int(status)
    except Terminated:
        print(f"{_PROG}: interrupted (SIGTERM); partial outputs were removed", file=sys.stderr)
        return EXIT_SIGTERM
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted; partial outputs were removed", file=sys.stderr)
        return EXIT_SIGINT
    except BrokenPipeError:
        # stdout went away (`| head`): stop quietly; point stdout at devnull so the
        # interpreter's final flush does not raise again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return 0
    except Exception as exc:  # noqa: BLE001 - the one place that classifies errors
        message = user_error_message(exc)
        if message is None or debug:
            traceback.print_exc()
            return EXIT_USER_ERROR if message is not None else EXIT_BUG
        print(f"{_PROG}: error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        warnings.formatwarning = old_format
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)
