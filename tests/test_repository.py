"""The repository's promises: README commands, CI entry point, workspace layout, every CLI."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_COMMANDS = [
    "uv run --all-packages medshared demo",
    "bash ci/test-all.sh",
]


def _load_ci_module(name: str):
    spec = importlib.util.spec_from_file_location(f"ci_{name}", ROOT / "ci" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _first_code_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index("```")
    body = text[text.index("\n", start) + 1 : text.index("```", start + 3)]
    return [line for line in body.splitlines() if line.strip()]


def test_readme_opens_with_exactly_the_two_commands() -> None:
    assert _first_code_block() == README_COMMANDS
    assert "pip install uv" in (ROOT / "README.md").read_text().split("```")[0]


def test_ci_run_executes_the_readme_test_command() -> None:
    run = (ROOT / ".ci" / "run").read_text()
    assert README_COMMANDS[1] in run
    assert "command -v uv" in run and "pip install" in run


def test_top_level_layout() -> None:
    required = {"pyproject.toml", "packages", "shared", "tests", "ci", "README.md", "uv.lock"}
    present = {p.name for p in ROOT.iterdir()}
    assert required <= present
    extra = {n for n in present - required if not n.startswith(".")}
    assert not extra, f"unexpected top-level entries: {sorted(extra)}"


def test_workspace_root_is_virtual_and_admits_python_311() -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "project" not in root, "the workspace root must not be a publishable project"
    assert set(root["tool"]["uv"]["workspace"]["members"]) == {"packages/*", "shared"}
    for name, folder in _load_ci_module("packages").distributions():
        project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
        spec = project["requires-python"]
        assert spec.startswith(">=3.") and int(spec.split(".")[1]) <= 11, (name, spec)
        assert project["version"], name
        if name != "medshared":
            deps = [
                d.split("[")[0].split(">")[0].split("=")[0].strip() for d in project["dependencies"]
            ]
            assert "medshared" in deps, f"{name} must depend on medshared"
            assert project["scripts"][name] == f"{name}.cli:main"


def test_medshared_runtime_dependencies_are_light() -> None:
    project = tomllib.loads((ROOT / "shared" / "pyproject.toml").read_text())["project"]
    names = {d.split(">")[0].split("=")[0].split("[")[0].strip() for d in project["dependencies"]}
    assert names == {"numpy", "scipy", "nibabel", "h5py"}


def test_package_matrix_lists_every_distribution() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "ci" / "packages.py"), "--json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    names = json.loads(out)
    folders = [p.parent.name for p in (ROOT / "packages").glob("*/pyproject.toml")]
    assert names[0] == "medshared"
    assert sorted(names[1:]) == sorted(folders)


def test_summary_counts_junit_files(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_text(
        '<testsuites><testsuite tests="5" failures="1" errors="0" skipped="1"/></testsuites>'
    )
    (tmp_path / "b.xml").write_text('<testsuite tests="3" failures="0" errors="1" skipped="0"/>')
    proc = subprocess.run(
        [sys.executable, str(ROOT / "ci" / "summarize.py"), *map(str, tmp_path.glob("*.xml"))],
        capture_output=True,
        text=True,
    )
    assert proc.stdout.strip() == "total: 5 passed, 2 failed, 1 skipped"
    assert proc.returncode == 1


@pytest.mark.parametrize("name", [n for n, _ in _load_ci_module("packages").distributions()])
def test_every_console_script_answers_help_and_version(name: str, script) -> None:
    exe = script(name)
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    project = tomllib.loads(
        (dict(_load_ci_module("packages").distributions())[name] / "pyproject.toml").read_text()
    )["project"]
    assert version.stdout.strip() == f"{name} {project['version']}"
    helptext = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    assert "usage" in helptext.lower()


TOOLS = [n for n, _ in _load_ci_module("packages").distributions() if n != "medshared"]


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_registers_its_demo_with_the_shared_table(tool: str, script) -> None:
    """The entry point group medshared.demos is the only contract with the results table."""
    from importlib.metadata import entry_points

    project = tomllib.loads(
        (dict(_load_ci_module("packages").distributions())[tool] / "pyproject.toml").read_text()
    )["project"]
    declared = project["entry-points"]["medshared.demos"]
    assert declared == {tool: f"{tool}.demo:demo_rows"}
    installed = {ep.name: ep.value for ep in entry_points(group="medshared.demos")}
    assert installed.get(tool) == f"{tool}.demo:demo_rows"
    assert callable(entry_points(group="medshared.demos")[tool].load())
    helptext = subprocess.run(
        [script(tool), "demo", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "usage" in helptext.lower()


def test_no_private_copy_of_the_demo_driver() -> None:
    assert not (ROOT / "ci" / "demo.py").exists(), "the README's table is `medshared demo`"


@pytest.mark.slow
def test_readme_first_command_prints_results_table(script) -> None:
    proc = subprocess.run(
        [script("medshared"), "demo"], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "=== results (all tools) ===" in proc.stdout
