"""List the workspace's distributions (the CI matrix): medshared first, then every tool.

Usage:
  python ci/packages.py            one distribution name per line
  python ci/packages.py --json     a JSON list (for the GitHub Actions matrix)
  python ci/packages.py --paths    "name<TAB>folder" per line
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def distributions() -> list[tuple[str, Path]]:
    """(name, folder) of every workspace member that has a pyproject.toml, medshared first."""
    found = []
    folders = [ROOT / "shared", *sorted(p for p in (ROOT / "packages").glob("*") if p.is_dir())]
    for folder in folders:
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            name = tomllib.loads(pyproject.read_text())["project"]["name"]
            found.append((name, folder))
    return found


def main(argv: list[str]) -> int:
    dists = distributions()
    if "--json" in argv:
        print(json.dumps([name for name, _ in dists]))
    elif "--paths" in argv:
        for name, folder in dists:
            print(f"{name}\t{folder.relative_to(ROOT)}")
    else:
        for name, _ in dists:
            print(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
