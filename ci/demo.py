"""Run every tool's main job (`<tool> demo`) on built-in data and print one results table.

Each tool's demo prints its own detailed table and writes headline rows to a JSON file
(``--summary-json``); this script gathers them into a single table at the end. Used by the
README's first command: ``uv run --all-packages python ci/demo.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["flowsr", "wdrcodec", "streamvq", "usenhance", "perfdecon"]


def tools() -> list[str]:
    """Tool names (console scripts) of the packages present under packages/, in README order."""
    names = []
    for pyproject in sorted((ROOT / "packages").glob("*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        if project["name"] in project.get("scripts", {}):
            names.append(project["name"])
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def _script(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"error: console script '{name}' not found; run `uv sync --all-packages`")
    return found


def main() -> int:
    rows: list[dict] = []
    failures: list[str] = []
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in tools():
            summary = Path(tmp) / f"{name}.json"
            print(f"\n=== {name} demo ===", flush=True)
            t0 = time.perf_counter()
            proc = subprocess.run(
                [_script(name), "demo", "--summary-json", str(summary)],
                env={**os.environ, "MPLBACKEND": "Agg"},
                check=False,
            )
            timings[name] = time.perf_counter() - t0
            if proc.returncode != 0 or not summary.exists():
                failures.append(name)
                continue
            rows.extend(json.loads(summary.read_text()))
    print("\n=== results (all tools) ===")
    header = ("tool", "case", "method", "metric", "value", "unit")
    table = [header] + [
        (
            str(r["tool"]),
            str(r["case"]),
            str(r["method"]),
            str(r["metric"]),
            f"{r['value']:.4g}" if isinstance(r["value"], int | float) else str(r["value"]),
            str(r.get("unit", "")),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print("\nwall time: " + ", ".join(f"{n} {t:.1f} s" for n, t in timings.items()))
    if failures:
        print(f"FAILED demos: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
