"""The demo registry: discovery through entry points, one table, failures reported by name."""

from __future__ import annotations

import json
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from medshared import demo
from medshared.cli import main as cli_main
from medshared.demo import ResultRow, format_table, run_demos
from medshared.errors import MedsharedError

_FAKE = textwrap.dedent(
    """
    from pathlib import Path
    from medshared.demo import ResultRow
    from medshared.errors import MedsharedError

    def good(out_dir: Path, quick: bool):
        (out_dir / "result.txt").write_text("quick" if quick else "full")
        return [ResultRow("alpha", "phantom", "m1", "PSNR", 31.25, "dB", "paper 30.0"),
                ResultRow("alpha", "phantom", "m1", "SSIM", 0.9)]

    def second(out_dir: Path, quick: bool):
        return [ResultRow("beta", "case b", "model", "Dice", 0.81, "")]

    def user_problem(out_dir: Path, quick: bool):
        raise MedsharedError("extra 'torch' is not installed")

    def bug(out_dir: Path, quick: bool):
        return [{"not": "a row"}]
    """
)


@pytest.fixture
def fake_demos(tmp_path: Path, monkeypatch):
    """Register fake tools' demos (a module on sys.path + patched entry points)."""
    (tmp_path / "fake_tool_demos.py").write_text(_FAKE)
    monkeypatch.syspath_prepend(str(tmp_path))

    def install(**named: str) -> None:
        eps = [
            EntryPoint(name, f"fake_tool_demos:{func}", demo.GROUP) for name, func in named.items()
        ]
        monkeypatch.setattr(demo, "entry_points", lambda group: eps if group == demo.GROUP else [])

    return install


def test_result_row_schema() -> None:
    row = ResultRow("wdrcodec", "dipy S0", "3D-WDR 1 bpv", "PSNR", 40.5, "dB", "SPERR 39.1")
    assert row.to_json() == {
        "tool": "wdrcodec",
        "case": "dipy S0",
        "method": "3D-WDR 1 bpv",
        "metric": "PSNR",
        "value": 40.5,
        "unit": "dB",
        "baseline": "SPERR 39.1",
    }
    for bad in (float("nan"), float("inf"), "40"):
        with pytest.raises(MedsharedError, match="finite number"):
            ResultRow("t", "c", "m", "x", bad)


def test_format_table_aligns_columns() -> None:
    rows = [ResultRow("a", "case", "m", "PSNR", 31.2345678, "dB"), ResultRow("bb", "c", "mm", "D", 2)]
    lines = format_table(rows).splitlines()
    assert lines[0].split() == ["tool", "case", "method", "metric", "value", "unit", "baseline"]
    assert set(lines[1]) <= {"-", " "}
    assert "31.23" in lines[2] and lines[2].index("31.23") == lines[0].index("value")


def test_run_demos_in_readme_order_with_files(fake_demos, tmp_path: Path) -> None:
    fake_demos(zeta="second", wdrcodec="good")
    out = tmp_path / "out"
    rows, timings, failed = run_demos(out_dir=out, quick=True)
    assert list(timings) == ["wdrcodec", "zeta"]  # registered tools first, then by name
    assert [r.metric for r in rows] == ["PSNR", "SSIM", "Dice"]
    assert failed == []
    assert (out / "wdrcodec" / "result.txt").read_text() == "quick"


def test_failures_are_reported_and_others_still_run(fake_demos, capsys) -> None:
    fake_demos(a="user_problem", b="bug", c="second")
    rows, _, failed = run_demos()
    assert failed == ["a", "b"] and [r.tool for r in rows] == ["beta"]
    err = capsys.readouterr().err
    assert "a demo failed: extra 'torch' is not installed" in err
    assert "TypeError" in err  # a bug keeps its traceback


def test_cli_demo_prints_one_table_and_writes_json(fake_demos, tmp_path: Path, capsys) -> None:
    fake_demos(alpha="good", beta="second")
    js = tmp_path / "rows.json"
    assert cli_main(["demo", "--quick", "--json", str(js), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "=== results (all tools) ===" in out and "paper 30.0" in out
    assert json.loads(js.read_text())[0]["value"] == 31.25
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["alpha", "beta"]


def test_cli_demo_errors_before_any_work(fake_demos, tmp_path: Path, capsys) -> None:
    fake_demos(alpha="good")
    assert cli_main(["demo", "--only", "nosuch"]) == 2
    assert capsys.readouterr().err.strip() == (
        "medshared: error: no demo registered for nosuch (installed: alpha)"
    )
    (tmp_path / "d.json").mkdir()
    assert cli_main(["demo", "--json", str(tmp_path / "d.json"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("d.json: is a folder, not a file; remove it or choose another name")
    assert not (tmp_path / "o").exists()  # refused before the demo ran
    assert cli_main(["demo", "--out", str(tmp_path / "x" / "y")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_no_demo_installed(monkeypatch, capsys) -> None:
    monkeypatch.setattr(demo, "entry_points", lambda group: [])
    assert demo.main() == 1
    assert "no tool demos are installed" in capsys.readouterr().out


def test_tool_demo_command_prints_the_rows_and_keeps_files_in_out(tmp_path, capsys) -> None:
    import argparse

    from medshared.demo import ResultRow, add_demo_command

    seen = []

    def demo_rows(out_dir, quick):
        (out_dir / "made.txt").write_text("x")
        seen.append((out_dir, quick))
        return [ResultRow("toy", "case", "method", "PSNR", 41.25, "dB", "J2K 38.0")]

    parser = argparse.ArgumentParser(prog="toy")
    add_demo_command(parser.add_subparsers(), "toy", demo_rows)
    args = parser.parse_args(["demo", "--out", str(tmp_path / "keep"), "--quick"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "41.25" in out and "J2K 38.0" in out
    assert (tmp_path / "keep" / "made.txt").read_text() == "x" and seen[0][1] is True
    args = parser.parse_args(["demo"])
    args.func(args)
    assert not seen[1][0].exists()  # the default temporary folder is removed afterwards
