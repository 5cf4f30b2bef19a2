"""The demo registry: every installed tool's main job on built-in data, one results table.

Contract between a tool and the table (the *only* one)
------------------------------------------------------
A tool registers one callable in the entry-point group ``medshared.demos``::

    [project.entry-points."medshared.demos"]
    wdrcodec = "wdrcodec.demo:demo_rows"

The callable has the signature ``demo_rows(out_dir: pathlib.Path, quick: bool) -> list[ResultRow]``.
It runs the tool's main job on built-in data (nothing downloaded), writes whatever files it makes
under ``out_dir``, may print its own detailed table, and returns its headline rows. Each row is a
:class:`ResultRow`; its JSON form (``ResultRow.to_json``) has exactly these keys:

========== ======== ===========================================================================
key        type     meaning
========== ======== ===========================================================================
tool       str      distribution name, e.g. ``"wdrcodec"``
case       str      the data, e.g. ``"dipy S0_10slices"``
method     str      the method or model, e.g. ``"3D-WDR 1 bpv"``
metric     str      the quantity, e.g. ``"PSNR"``
value      float    its measured value (finite; ``NaN`` is not allowed)
unit       str      unit of ``value`` (``"dB"``, ``"%"``, ``""`` for unitless)
baseline   str      optional: what ``value`` should be compared with (a baseline's value or a
                    paper figure, as text), ``""`` if none
========== ======== ===========================================================================

``medshared demo`` (the README's first command) discovers every registered demo, runs each in this
process (imports are paid once), and prints one table of all rows plus each tool's wall time.
A tool whose demo fails is reported by name and the command exits 1 after running the others.
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from importlib.metadata import entry_points
from pathlib import Path

from medshared.errors import MedsharedError

GROUP = "medshared.demos"
ORDER = ["wdrcodec", "perfdecon", "streamvq", "usenhance", "flowsr"]


@dataclass(frozen=True)
class ResultRow:
    """One headline result of a tool's demo (see the module docstring for the schema)."""

    tool: str
    case: str
    method: str
    metric: str
    value: float
    unit: str = ""
    baseline: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.value, int | float) or not math.isfinite(float(self.value)):
            raise MedsharedError(
                f"demo row {self.tool}/{self.case}/{self.metric}: value must be a finite number, "
                f"got {self.value!r}"
            )

    def to_json(self) -> dict:
        """The row as a JSON-ready dict with exactly the schema's keys."""
        return {**asdict(self), "value": float(self.value)}


def registered_demos() -> dict[str, object]:
    """Entry points of the ``medshared.demos`` group by tool name, in README order."""
    eps = {ep.name: ep for ep in entry_points(group=GROUP)}
    names = sorted(eps, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    return {n: eps[n] for n in names}


def format_table(rows: list[ResultRow]) -> str:
    """Align ``rows`` in a plain-text table (one header line, one rule, one line per row)."""
    header = ("tool", "case", "method", "metric", "value", "unit", "baseline")
    body = [
        (r.tool, r.case, r.method, r.metric, f"{float(r.value):.4g}", r.unit, r.baseline)
        for r in rows
    ]
    table = [header, *body]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    lines = []
    for i, row in enumerate(table):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def add_demo_command(subparsers, tool: str, demo_rows) -> None:
    """Add the ``<tool> demo`` subcommand: run ``demo_rows`` and print :func:`format_table`.

    Every tool's ``demo`` is this one command, so options and output agree across tools:
    ``--out DIR`` keeps the files the demo writes (default: a temporary folder, removed after),
    ``--quick`` asks for the shortest run. ``demo_rows`` may be the callable or its
    ``"module:function"`` path (imported only when the command runs, so ``--help`` stays fast).
    """
    p = subparsers.add_parser(
        "demo", help=f"run {tool}'s main job on built-in data and print its results table"
    )
    p.add_argument("--out", default=None, help="keep the demo's files in this folder "
                   "(default: a temporary folder, removed afterwards)")
    p.add_argument("--quick", action="store_true", help="shortest run (default: off)")
    p.set_defaults(func=lambda args: run_tool_demo(demo_rows, args.out, args.quick))


def run_tool_demo(demo_rows, out: str | Path | None = None, quick: bool = False) -> int:
    """Run one tool's ``demo_rows(out_dir, quick)`` and print its rows as a table; returns 0."""
    if isinstance(demo_rows, str):
        import importlib

        module, _, name = demo_rows.partition(":")
        demo_rows = getattr(importlib.import_module(module), name)
    if out is not None:
        from medshared.io.outputs import check_output_path

        folder = Path(out)
        if folder.exists() and not folder.is_dir():
            raise MedsharedError(f"--out {folder}: exists and is not a folder")
        if not folder.exists():
            check_output_path(folder, what="--out")
        folder.mkdir(parents=True, exist_ok=True)
        rows = list(demo_rows(folder, quick))
    else:
        with tempfile.TemporaryDirectory(prefix="demo-") as tmp:
            rows = list(demo_rows(Path(tmp), quick))
    print(format_table(rows))
    return 0


def run_demos(
    only: list[str] | None = None,
    out_dir: Path | None = None,
    quick: bool = False,
) -> tuple[list[ResultRow], dict[str, float], list[str]]:
    """Run the registered demos; return (rows, wall seconds per tool, failed tool names)."""
    demos = registered_demos()
    if only:
        unknown = sorted(set(only) - set(demos))
        if unknown:
            raise MedsharedError(
                f"no demo registered for {', '.join(unknown)} (installed: "
                f"{', '.join(demos) or 'none'})"
            )
        demos = {n: ep for n, ep in demos.items() if n in only}
    rows: list[ResultRow] = []
    timings: dict[str, float] = {}
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="medshared-demo-") as tmp:
        base = Path(out_dir) if out_dir is not None else Path(tmp)
        base.mkdir(exist_ok=True)
        for name, ep in demos.items():
            print(f"\n=== {name} demo ===", flush=True)
            folder = base / name
            folder.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            try:
                func = ep.load()
                got = list(func(folder, quick))
                for row in got:
                    if not isinstance(row, ResultRow):
                        raise TypeError(f"{name} demo returned {type(row).__name__}, not ResultRow")
                rows.extend(got)
            except KeyboardInterrupt:
                raise
            except MedsharedError as exc:  # a user-level problem (missing extra...): one line
                print(f"{name} demo failed: {exc}", file=sys.stderr)
                failed.append(name)
            except Exception:  # noqa: BLE001 - one failing tool must not hide the others
                traceback.print_exc()
                failed.append(name)
            timings[name] = time.perf_counter() - t0
    return rows, timings, failed


def main(
    only: list[str] | None = None,
    out_dir: Path | None = None,
    quick: bool = False,
    json_path: Path | None = None,
) -> int:
    """Run the demos and print the combined table; returns the exit status.

    ``json_path`` (checked before any demo runs) receives the rows as a JSON list of objects
    with the schema's keys; ``out_dir`` (default: a temporary folder) gets one sub-folder per
    tool. Exit status 0, or 1 if no demo is installed or any demo failed.
    """
    import json

    from medshared.io.atomic import atomic_write_text
    from medshared.io.outputs import check_output_folder, check_output_path

    if json_path is not None:
        check_output_path(json_path, what="--json")
    if out_dir is not None:
        check_output_folder(out_dir, what="--out")
    rows, timings, failed = run_demos(only, out_dir, quick)
    if not timings:
        print("no tool demos are installed (entry-point group medshared.demos is empty)")
        return 1
    print("\n=== results (all tools) ===")
    print(format_table(rows))
    print("\nwall time: " + ", ".join(f"{n} {t:.1f} s" for n, t in timings.items()))
    if json_path is not None:
        text = json.dumps([r.to_json() for r in rows], indent=2, allow_nan=False) + "\n"
        atomic_write_text(json_path, text, what="--json")
    if failed:
        print(f"FAILED demos: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
