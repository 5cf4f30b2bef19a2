"""Adversarial probes of every tool's command line (issue 8, "How it will be checked").

Each probe runs one command as a careless or hostile user would and checks what the issue asks:

- a user error is exit 2 with exactly ONE non-empty stderr line (tqdm bar redraws written with a
  carriage return are ignored, nothing else is) that names the user's file or option, with no
  traceback, raw ``[Errno ...]`` text or temp-file name;
- Ctrl-C is exit 130 and SIGTERM exit 143, each with one line;
- the probe's folder is exactly as before: inputs keep their bytes and mtime, a FIFO / symlink /
  folder at an output path is still that, and nothing partial (``.part`` files, staging
  folders, half a set of maps) is left;
- a header that claims ~15 GiB is refused while the process stays far below that;
- nothing blocks (every run has a timeout), and a closed stdout (``| head``) prints nothing.

The numpy tools (medshared, wdrcodec, perfdecon) are run as subprocesses. The torch tools
(streamvq, usenhance, flowsr) import torch before their first check, which costs seconds per
process on the 2-core machine, so most of their probes call the console script's own ``main``
in this process; FIFOs, signals, memory and closed pipes always use a real subprocess.
Numeric options are swept through the parser itself with each handler replaced by a sentinel,
which is exactly the "validated at parse time, before any work" rule.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _probes_lib import (  # noqa: E402
    SIGINT,
    SIGTERM,
    assert_one_line,
    assert_unchanged,
    copy_into,
    leftovers,
    make_bad,
    parse_only,
    place_output,
    run,
    run_inprocess,
    snapshot,
    subparsers,
)

TOOLS = ("medshared", "wdrcodec", "perfdecon", "streamvq", "usenhance", "flowsr")
TORCH_TOOLS = ("streamvq", "usenhance", "flowsr")

# Probes that fail today. They are listed in the probe report for the owners, and are not
# committed as failing nor xfailed: they are not generated until the tool is fixed. Remove an
# entry once its tool passes it.
NOT_YET_PASSING: set[str] = set()


if os.environ.get("PROBES_ONLY_PENDING") == "1":  # re-check the list: run only those
    _PENDING_MODE = True
else:
    _PENDING_MODE = False


def _keep(group: str, params) -> list:
    """``params`` without the probes listed in NOT_YET_PASSING as ``group:id``.

    With ``PROBES_ONLY_PENDING=1`` in the environment, exactly the listed probes instead (to
    see which ones a tool's fix has made pass).
    """
    return [p for p in params if (f"{group}:{p.id}" in NOT_YET_PASSING) == _PENDING_MODE]


def _bin(tool: str) -> str:
    local = Path(sys.executable).parent / tool
    found = str(local) if local.exists() else shutil.which(tool)
    if not found:
        pytest.skip(f"console script {tool} is not installed")
    return found


def _need(tool: str) -> None:
    pytest.importorskip(tool if tool != "medshared" else "medshared.cli")


# ---------------------------------------------------------------------------------------------
# Valid inputs, built once (tiny; the torch tools' models are trained for one or two steps)
# ---------------------------------------------------------------------------------------------


def _write_trk(folder: Path) -> None:
    from medshared.io import write_image, write_streamlines

    affine = np.eye(4)
    affine[:3, 3] = -32.0
    write_image(folder / "ref.nii.gz", np.zeros((64, 64, 64), np.uint8), affine)
    t = np.linspace(0.0, 1.0, 30)[:, None]
    rng = np.random.default_rng(0)
    lines = [
        np.hstack([t * 50 - 25, 10 * np.sin(3 * t) + rng.normal(0, 1), 10 * np.cos(2 * t)])
        .astype(np.float32)
        for _ in range(40)
    ]
    write_streamlines(folder / "bundle.trk", lines, folder / "ref.nii.gz")


def _sh(folder: Path, *cmds: list[str]) -> str:
    """Run commands one after another in ``folder``; '' on success, else the failure."""
    for cmd in cmds:
        proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=240)
        if proc.returncode != 0:
            return f"{' '.join(map(str, cmd))}: exit {proc.returncode}: {proc.stderr[-500:]}"
    return ""


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> dict[str, Path | str]:
    """Valid inputs of every tool: volumes, a .wdr, a CT series, trk/h5/png and tiny models."""
    root = tmp_path_factory.mktemp("world")
    w: dict[str, Path | str] = {"root": root}
    rng = np.random.default_rng(1)
    vol = (rng.normal(500, 80, (24, 20, 10))).astype(np.int16)
    from medshared.io import write_image

    write_image(root / "vol.nii.gz", vol, np.diag([1.0, 1.0, 2.0, 1.0]))
    write_image(root / "vol2.nii.gz", (vol + 3).astype(np.int16), np.diag([1.0, 1.0, 2.0, 1.0]))
    np.save(root / "vol.npy", vol)
    w.update(vol=root / "vol.nii.gz", vol2=root / "vol2.nii.gz", npy=root / "vol.npy")
    jobs: dict[str, list[list[str]]] = {}
    if shutil.which("wdrcodec") or (Path(sys.executable).parent / "wdrcodec").exists():
        jobs["wdr"] = [[_bin("wdrcodec"), "encode", "vol.nii.gz", "vol.wdr", "--bpv", "2"]]
    if (Path(sys.executable).parent / "perfdecon").exists():
        jobs["ctp"] = [[_bin("perfdecon"), "phantom", "case", "--size", "32", "--slices", "1",
                        "--frames", "12"]]
    if (Path(sys.executable).parent / "streamvq").exists():
        _write_trk(root)
        jobs["svq"] = [
            [_bin("streamvq"), "prepare", "--synthetic", "2", "--synthetic-streamlines", "10",
             "20", "--out", "ds.h5", "--quiet"],
            [_bin("streamvq"), "train", "--data", "ds.h5", "--out", "svqrun", "--steps", "1",
             "--hidden", "8", "--residual-hidden", "4", "--embedding-dim", "8",
             "--codebook-size", "8", "--batch-size", "4", "--quiet", "--device", "cpu",
             "--model", "ae", "--log-every", "1", "--save-every", "1"],
            [_bin("streamvq"), "encode", "bundle.trk", "--weights", "svqrun/model.safetensors",
             "--out", "latent.npy"],
        ]
    if (Path(sys.executable).parent / "usenhance").exists():
        jobs["us"] = [
            [_bin("usenhance"), "simulate", "us", "--n", "2", "--size", "32", "--organs",
             "thyroid", "--quiet"],
            [_bin("usenhance"), "train", "us", "usrun", "--max-steps", "1", "--epochs", "1",
             "--net-ngf", "4", "--net-num-downs", "3", "--crop", "32",
             "--lpips-random-backbone", "--batch-size", "1", "--quiet", "--device", "cpu",
             "--threads", "1", "--net-ndf", "4", "--net-d-layers", "1", "--val-images", "1"],
        ]
    if (Path(sys.executable).parent / "flowsr").exists():
        jobs["flow"] = [
            [_bin("flowsr"), "phantom", "--out", "hr.h5", "--shape-x", "16", "--shape-y", "16",
             "--shape-z", "8", "--frames", "3", "--voxel-mm", "4", "--radius-mm", "5"],
            [_bin("flowsr"), "downsample", "hr.h5", "--out", "lr.h5"],
            [_bin("flowsr"), "train", "--out", "flowrun", "--cfd", "lr.h5", "hr.h5", "--steps",
             "1", "--model-channels", "4", "--model-groups", "1", "--model-blocks", "1",
             "--model-reduction", "2", "--batch-size", "1", "--patch-size-x", "4",
             "--patch-size-y", "4", "--patch-size-z", "4", "--quiet", "--device", "cpu",
             "--patch-cfd-per-frame", "1", "--patch-cfd-covered", "0",
             "--patch-mri-per-frame", "1"],
        ]
    with ThreadPoolExecutor(len(jobs) or 1) as pool:
        failures = dict(zip(jobs, pool.map(lambda c: _sh(root, *c), jobs.values())))
    w["failures"] = failures  # type: ignore[assignment]
    w.update(
        wdr=root / "vol.wdr", ctp=root / "case" / "ctp.nii.gz",
        brain=root / "case" / "brain_mask.nii.gz", trk=root / "bundle.trk",
        ref=root / "ref.nii.gz", ds=root / "ds.h5", svq_model=root / "svqrun/model.safetensors",
        latent=root / "latent.npy", png=root / "us/thyroid/low_quality/0000.png",
        us=root / "us", us_model=root / "usrun/generator.safetensors", hr=root / "hr.h5",
        lr=root / "lr.h5", flow_model=root / "flowrun/model.safetensors",
    )
    return w


def _req(world, *keys: str) -> None:
    """Skip when a needed input could not be built (the reason is the tool's own failure)."""
    for key in keys:
        path = world[key]
        if not Path(path).exists():
            job = {"wdr": "wdr", "ctp": "ctp", "brain": "ctp", "svq_model": "svq",
                   "latent": "svq", "ds": "svq", "us_model": "us", "png": "us", "us": "us",
                   "hr": "flow", "lr": "flow", "flow_model": "flow"}.get(key, "")
            pytest.fail(f"could not build {key}: {world['failures'].get(job, '?')}")


def _invoke(tool: str, argv: list, cwd: Path, *, inprocess: bool | None = None):
    """Run a probe: in this process for the torch tools (never for FIFOs), else a subprocess."""
    if inprocess is None:
        inprocess = tool in TORCH_TOOLS
    if inprocess:
        return run_inprocess(tool, [str(a) for a in argv], cwd)
    return run([_bin(tool), *map(str, argv)], cwd)


# ---------------------------------------------------------------------------------------------
# 1. Bad input files: one line naming the file, nothing written, nothing blocks
# ---------------------------------------------------------------------------------------------

# (id, tool, input name, valid key, other-format key, argv with {IN} for the probed input and
#  {key} for valid inputs copied into the probe folder, kinds)
ALL = ("missing", "empty", "truncated", "random", "text", "folder", "fifo", "wrongfmt")
INPUT_PROBES = [
    ("compare-ref-nii", "medshared", "ref.nii.gz", "vol", "png",
     ["compare", "{IN}", "{vol2}"], (*ALL, "huge")),
    ("compare-test-npy", "medshared", "test.npy", "npy", "vol",
     ["compare", "{npy}", "{IN}"], ("empty", "random", "text", "folder", "fifo", "huge")),
    ("encode-nii", "wdrcodec", "in.nii.gz", "vol", "png",
     ["encode", "{IN}", "out.wdr", "--bpv", "1"], (*ALL, "huge")),
    ("encode-npy", "wdrcodec", "in.npy", "npy", "vol",
     ["encode", "{IN}", "out.wdr", "--bpv", "1"], ("empty", "random", "folder", "fifo", "huge")),
    ("encode-nii-32767cubed", "wdrcodec", "big.nii", "vol", "vol",
     ["encode", "{IN}", "out.wdr", "--bpv", "1"], ("huge",)),
    ("decode", "wdrcodec", "in.wdr", "wdr", "vol",
     ["decode", "{IN}", "out.nii.gz"],
     ("missing", "empty", "random", "text", "folder", "fifo", "wrongfmt")),
    ("info", "wdrcodec", "in.wdr", "wdr", "vol", ["info", "{IN}"],
     ("empty", "random", "text", "fifo", "wrongfmt")),
    ("eval", "wdrcodec", "in.nii.gz", "vol", "png", ["eval", "{IN}", "--bpv", "1"],
     ("random", "fifo", "huge")),
    ("maps-series", "perfdecon", "series.nii.gz", "ctp", "png",
     ["maps", "{IN}", "--out", "maps", "--quiet"], (*ALL, "huge")),
    ("maps-3d-volume", "perfdecon", "series.nii.gz", "ctp", "vol",
     ["maps", "{IN}", "--out", "maps", "--quiet"], ("wrongfmt",)),
    ("maps-mask", "perfdecon", "mask.nii.gz", "brain", "png",
     ["maps", "{ctp}", "--mask", "{IN}", "--out", "maps", "--quiet"],
     ("missing", "random", "fifo", "huge")),
    ("maps-aif-mask", "perfdecon", "aif.nii.gz", "brain", "png",
     ["maps", "{ctp}", "--aif-mask", "{IN}", "--out", "maps", "--quiet"],
     ("random", "fifo", "huge")),
    ("maps-aif-file", "perfdecon", "aif.txt", "brain", "png",
     ["maps", "{ctp}", "--aif-file", "{IN}", "--out", "maps", "--quiet"],
     ("missing", "empty", "random", "text", "fifo")),
    ("maps-aif-model", "perfdecon", "aif.safetensors", "brain", "vol",
     ["maps", "{ctp}", "--aif-model", "{IN}", "--out", "maps", "--quiet"],
     ("missing", "empty", "random", "text", "folder", "fifo")),
    ("evaluate-checkpoint", "perfdecon", "ck.safetensors", "brain", "vol",
     ["evaluate", "--checkpoint", "{IN}", "--cases", "1", "--size", "32", "--slices", "1"],
     ("missing", "random")),
    ("svq-encode-trk", "streamvq", "in.trk", "trk", "vol",
     ["encode", "{IN}", "--weights", "{svq_model}", "--out", "lat.npy"], ALL),
    ("svq-encode-weights", "streamvq", "w.safetensors", "svq_model", "us_model",
     ["encode", "{trk}", "--weights", "{IN}", "--out", "lat.npy"],
     ("missing", "empty", "random", "text", "fifo", "wrongfmt")),
    ("svq-decode-latent", "streamvq", "lat.npy", "latent", "vol",
     ["decode", "{IN}", "--weights", "{svq_model}", "--out", "out.trk", "--reference", "{ref}"],
     ("missing", "empty", "random", "text", "fifo", "huge")),
    ("svq-train-data", "streamvq", "data.h5", "ds", "hr",
     ["train", "--data", "{IN}", "--out", "run", "--steps", "1", "--quiet", "--device", "cpu"],
     ("missing", "empty", "random", "fifo", "wrongfmt")),
    ("svq-prepare-trk", "streamvq", "subj/CST.trk", "trk", "vol",
     ["prepare", "{IN}", "--out", "d.h5", "--quiet"], ("empty", "random", "fifo")),
    ("us-enhance-png", "usenhance", "in.png", "png", "vol",
     ["enhance", "{IN}", "out.png", "--ckpt", "{us_model}", "--quiet"],
     ("missing", "empty", "truncated", "random", "text", "fifo", "wrongfmt", "huge")),
    ("us-enhance-ckpt", "usenhance", "g.safetensors", "us_model", "svq_model",
     ["enhance", "{png}", "out.png", "--ckpt", "{IN}", "--quiet"],
     ("missing", "empty", "random", "text", "folder", "fifo", "wrongfmt")),
    ("us-train-data", "usenhance", "data", "us", "vol",
     ["train", "{IN}", "run", "--max-steps", "1", "--quiet", "--lpips-random-backbone"],
     ("missing", "empty", "folder")),
    ("flow-predict-h5", "flowsr", "in.h5", "lr", "ds",
     ["predict", "{IN}", "--model", "{flow_model}", "--out", "out.h5", "--quiet"], ALL),
    ("flow-predict-model", "flowsr", "m.safetensors", "flow_model", "svq_model",
     ["predict", "{lr}", "--model", "{IN}", "--out", "out.h5", "--quiet"],
     ("missing", "empty", "random", "text", "fifo", "wrongfmt")),
    ("flow-predict-nifti", "flowsr", "u.nii.gz", "vol", "png",
     ["predict", "--nifti", "{IN}", "{vol}", "{vol}", "--model", "{flow_model}",
      "--out", "pred", "--quiet"], ("random", "fifo", "huge")),
    ("flow-wmf", "flowsr", "in.h5", "hr", "ds", ["wmf", "{IN}", "--out", "w.nii.gz"],
     ("missing", "truncated", "random", "fifo", "wrongfmt")),
    ("flow-downsample", "flowsr", "in.h5", "hr", "lr",
     ["downsample", "{IN}", "--out", "lo.h5"], ("empty", "random", "fifo")),
]


# The default run keeps the classes the issue found defects in; the rest of the sweep is
# ``slow`` (run with ``-m slow``). A FIFO probe of a torch tool needs its own process (~5-10 s
# of start-up on 2 loaded cores), so only each torch tool's main input gets one by default.
DEFAULT_INPUT_KINDS = {"random", "fifo", "huge", "folder", "empty"}
DEFAULT_OUTPUT_KINDS = {"same", "hardlink", "fifo", "symlink", "under_file"}
MAIN_TORCH_PROBES = {"svq-encode-trk", "us-enhance-png", "flow-predict-h5", "svq-encode",
                     "us-enhance", "flow-predict"}


# Inputs whose command imports torch before its first check (seconds per probe): by default
# only their random-bytes probe runs.
COSTLY_INPUTS = {"maps-aif-model", "evaluate-checkpoint"}


def _marks(tool: str, pid: str, kind: str, default_kinds: set[str]) -> tuple:
    if pid in COSTLY_INPUTS:
        default_kinds = {"random"}
    slow = kind not in default_kinds or (
        tool in TORCH_TOOLS and kind == "fifo" and pid not in MAIN_TORCH_PROBES
    )
    return (pytest.mark.slow,) if slow else ()


def _expand_inputs():
    for pid, tool, name, valid, other, argv, kinds in INPUT_PROBES:
        for kind in kinds:
            yield pytest.param(tool, name, valid, other, argv, kind, id=f"{pid}-{kind}",
                               marks=_marks(tool, pid, kind, DEFAULT_INPUT_KINDS))


def _fill(argv: list[str], world, folder: Path, probed: Path | None) -> list[str]:
    """Copy the valid inputs named in ``argv`` into ``folder`` and substitute the paths."""
    out = []
    for arg in argv:
        if arg == "{IN}":
            out.append(str(probed))
        elif arg.startswith("{") and arg.endswith("}"):
            key = arg[1:-1]
            _req(world, key)
            src = Path(world[key])
            dst = folder / f"given_{src.name}"
            if not dst.exists():
                copy_into(src, folder, dst.name)
            out.append(dst.name)
        else:
            out.append(arg)
    return out


def _other(world, key: str, folder: Path) -> Path:
    if key == "png":  # a valid file of another format: a PNG
        from medshared.io import write_png

        path = folder.parent / "other.png"
        if not path.exists():
            write_png(path, np.arange(64, dtype=np.uint8).reshape(8, 8))
        return path
    _req(world, key)
    return Path(world[key])


@pytest.mark.parametrize(
    ("tool", "name", "valid", "other", "argv", "kind"), _keep("input", _expand_inputs())
)
def test_bad_input_is_one_line_and_changes_nothing(
    tool, name, valid, other, argv, kind, world, tmp_path
):
    _need(tool)
    folder = tmp_path / "probe"
    folder.mkdir()
    probed = folder / name
    valid_path = Path(world[valid]) if kind in ("truncated",) else None
    if valid_path is not None:
        _req(world, valid)
    other_path = _other(world, other, folder) if kind == "wrongfmt" else None
    args = _fill(argv, world, folder, Path(name))
    make_bad(kind, probed, valid_path, other_path)
    before = snapshot(folder)
    out = _invoke(tool, args, folder, inprocess=None if kind != "fifo" else False)
    assert_one_line(out, names=[Path(name).name])
    assert_unchanged(before, folder)


# ---------------------------------------------------------------------------------------------
# 2. Dangerous output paths: refused before any work, nothing replaced
# ---------------------------------------------------------------------------------------------

FILE_OUT = ("same", "symlink_to_input", "hardlink", "fifo", "symlink", "folder", "under_file",
            "missing_parent")
# (id, tool, argv with {OUT} for the output and {key} for valid inputs, the input the output
#  may collide with (a key of ``world`` used in argv), output name, kinds)
OUTPUT_PROBES = [
    ("compare-json", "medshared", ["compare", "{vol}", "{vol2}", "--json", "{OUT}"], "vol",
     "m.json", FILE_OUT),
    ("encode", "wdrcodec", ["encode", "{vol}", "{OUT}", "--bpv", "1"], "vol", "o.wdr",
     FILE_OUT),
    ("decode", "wdrcodec", ["decode", "{wdr}", "{OUT}"], "wdr", "o.nii.gz", FILE_OUT),
    ("eval-json", "wdrcodec", ["eval", "{vol}", "--bpv", "1", "--json", "{OUT}"], "vol",
     "e.json", ("same", "fifo", "symlink", "under_file")),
    ("eval-plot", "wdrcodec", ["eval", "{vol}", "--bpv", "1", "--plot", "{OUT}"], "vol",
     "p.png", ("fifo", "under_file")),
    ("maps-out", "perfdecon", ["maps", "{ctp}", "--out", "{OUT}", "--quiet"], "ctp", "maps",
     ("fifo", "under_file", "missing_parent", "symlink")),
    ("phantom-out", "perfdecon", ["phantom", "{OUT}", "--size", "32", "--slices", "1"],
     "ctp", "case", ("fifo", "under_file", "symlink")),
    ("evaluate-out", "perfdecon",
     ["evaluate", "--out", "{OUT}", "--cases", "1", "--size", "32", "--slices", "1"], "ctp",
     "ev", ("fifo", "under_file")),
    ("svq-encode", "streamvq", ["encode", "{trk}", "--weights", "{svq_model}", "--out", "{OUT}"],
     "trk", "lat.npy", ("hardlink", "fifo", "symlink", "folder", "under_file")),
    ("svq-decode", "streamvq",
     ["decode", "{latent}", "--weights", "{svq_model}", "--out", "{OUT}", "--reference", "{ref}"],
     "latent", "o.trk", ("hardlink", "fifo", "symlink", "folder", "under_file")),
    ("svq-prepare", "streamvq", ["prepare", "--synthetic", "1", "--out", "{OUT}", "--quiet"],
     "ds", "d.h5", ("fifo", "symlink", "folder", "under_file")),
    ("svq-train", "streamvq",
     ["train", "--data", "{ds}", "--out", "{OUT}", "--steps", "1", "--quiet"], "ds", "run",
     ("fifo", "under_file", "same")),
    ("us-enhance", "usenhance",
     ["enhance", "{png}", "{OUT}", "--ckpt", "{us_model}", "--quiet"], "png", "o.png",
     ("same", "symlink_to_input", "hardlink", "fifo", "symlink", "under_file",
      "missing_parent")),
    ("us-simulate", "usenhance", ["simulate", "{OUT}", "--n", "1", "--size", "32", "--quiet"],
     "png", "sim", ("fifo", "under_file", "symlink")),
    ("flow-predict", "flowsr",
     ["predict", "{lr}", "--model", "{flow_model}", "--out", "{OUT}", "--quiet"], "lr", "o.h5",
     FILE_OUT),
    ("flow-downsample", "flowsr", ["downsample", "{hr}", "--out", "{OUT}"], "hr", "lo.h5",
     ("same", "hardlink", "fifo", "symlink", "folder", "under_file")),
    ("flow-wmf", "flowsr", ["wmf", "{hr}", "--out", "{OUT}"], "hr", "w.nii.gz",
     ("hardlink", "fifo", "symlink", "folder", "under_file")),
    ("flow-phantom", "flowsr", ["phantom", "--out", "{OUT}"], "hr", "p.h5",
     ("fifo", "symlink", "folder", "under_file")),
]


def _expand_outputs():
    for pid, tool, argv, inp, name, kinds in OUTPUT_PROBES:
        for kind in kinds:
            yield pytest.param(tool, argv, inp, name, kind, id=f"{pid}-{kind}",
                               marks=_marks(tool, pid, kind, DEFAULT_OUTPUT_KINDS))


@pytest.mark.parametrize(
    ("tool", "argv", "inp", "name", "kind"), _keep("output", _expand_outputs())
)
def test_dangerous_output_is_refused(tool, argv, inp, name, kind, world, tmp_path):
    _need(tool)
    folder = tmp_path / "probe"
    folder.mkdir()
    args = _fill([a for a in argv if a != "{OUT}"], world, folder, None)
    input_name = f"given_{Path(world[inp]).name}"
    input_path = folder / input_name
    if kind in ("same", "symlink_to_input", "hardlink") and not input_path.exists():
        copy_into(Path(world[inp]), folder, input_name)
    target = place_output(kind, folder / name, input_path, folder.parent / "victim.bin")
    rel = os.path.relpath(target, folder)
    filled = [rel if a == "{OUT}" else None for a in argv]
    it = iter(args)
    final = [f if f is not None else next(it) for f in filled]
    before = snapshot(folder)
    victim_before = snapshot(folder.parent)
    inprocess = None if kind != "fifo" else False
    out = _invoke(tool, final, folder, inprocess=inprocess)
    names = [Path(rel).name, Path(rel).parent.name] if kind == "under_file" else [Path(rel).name]
    if kind in ("same", "symlink_to_input", "hardlink"):
        names.append(input_name)
    assert_one_line(out, names=[n for n in names if n and n != "."])
    assert_unchanged(before, folder)
    assert snapshot(folder.parent).get("victim.bin") == victim_before.get("victim.bin")


# ---------------------------------------------------------------------------------------------
# 3. Multi-file results: an input inside the output folder, a clash half-way through the set
# ---------------------------------------------------------------------------------------------


def test_maps_refuses_an_input_that_is_one_of_its_outputs(world, tmp_path):
    """The issue's reproduction: ``maps d/cbf.nii.gz --out d`` must not replace the series."""
    _need("perfdecon")
    _req(world, "ctp")
    d = tmp_path / "d"
    d.mkdir()
    copy_into(Path(world["ctp"]), d, "cbf.nii.gz")
    before = snapshot(tmp_path)
    out = run([_bin("perfdecon"), "maps", "d/cbf.nii.gz", "--out", "d", "--quiet"], tmp_path)
    assert_one_line(out, names=["cbf.nii.gz"])
    assert_unchanged(before, tmp_path)


BLOCKED_SETS = [
    pytest.param("perfdecon", ["maps", "{ctp}", "--out", "o", "--quiet"], "mtt.nii.gz",
                 "folder", id="maps-folder-at-mtt"),
    pytest.param("perfdecon", ["maps", "{ctp}", "--out", "o", "--quiet"], "summary.json",
                 "fifo", id="maps-fifo-at-summary"),
    pytest.param("perfdecon", ["phantom", "o", "--size", "32", "--slices", "1"],
                 "truth.json", "folder", id="phantom-folder-at-truth"),
    pytest.param("perfdecon", ["evaluate", "--out", "o", "--cases", "1", "--size", "32",
                               "--slices", "1"], "accuracy.json", "folder",
                 id="evaluate-folder"),
    pytest.param("usenhance", ["simulate", "o", "--n", "1", "--size", "32", "--organs",
                               "thyroid", "--quiet"], "thyroid", "fifo",
                 id="simulate-fifo-at-organ"),
    ]


@pytest.mark.parametrize(("tool", "argv", "blocker", "kind"), _keep("set", BLOCKED_SETS))
def test_a_blocked_member_of_a_set_leaves_no_partial_set(
    tool, argv, blocker, kind, world, tmp_path
):
    """``mkdir -p o/mtt.nii.gz; maps ... --out o`` wrote cbf and cbv and then failed."""
    _need(tool)
    args = _fill(argv, world, tmp_path, None)
    (tmp_path / "o").mkdir()
    if kind == "fifo":
        os.mkfifo(tmp_path / "o" / blocker)
    else:
        (tmp_path / "o" / blocker).mkdir()
        (tmp_path / "o" / blocker / "keep.txt").write_text("keep\n")
    before = snapshot(tmp_path)
    out = run([_bin(tool), *args], tmp_path)
    assert_one_line(out, names=[blocker])
    assert_unchanged(before, tmp_path)


# ---------------------------------------------------------------------------------------------
# 4. A header that claims ~15 GiB: refused fast with bounded memory
# ---------------------------------------------------------------------------------------------

HUGE_MEMORY = [
    pytest.param("medshared", ["compare", "big.nii.gz", "big.nii.gz"], id="compare"),
    pytest.param("wdrcodec", ["encode", "big.nii.gz", "o.wdr", "--bpv", "1"], id="encode"),
    pytest.param("perfdecon", ["maps", "big.nii.gz", "--out", "m", "--quiet"], id="maps"),
    pytest.param("flowsr", ["predict", "--nifti", "big.nii.gz", "big.nii.gz", "big.nii.gz",
                            "--model", "{flow_model}", "--out", "p", "--quiet"], id="flowsr"),
]


@pytest.mark.parametrize(("tool", "argv"), _keep("huge", HUGE_MEMORY))
def test_huge_header_claim_is_refused_with_bounded_memory(tool, argv, world, tmp_path):
    _need(tool)
    from _probes_lib import huge_nifti_gz

    args = _fill(argv, world, tmp_path, None)
    huge_nifti_gz(tmp_path / "big.nii.gz")
    assert (tmp_path / "big.nii.gz").stat().st_size < 1000
    before = snapshot(tmp_path)
    out = run([_bin(tool), *args], tmp_path, timeout=60)
    assert_one_line(out, names=["big.nii.gz"])
    assert out.peak_rss_mb < 1500, f"peak RSS {out.peak_rss_mb:.0f} MB for a 15 GiB claim"
    assert_unchanged(before, tmp_path)


# ---------------------------------------------------------------------------------------------
# 5. Numeric options: every one validated at parse time (0, -1, nan, inf, 1e308)
# ---------------------------------------------------------------------------------------------

BAD_VALUES = ("nan", "inf", "-inf", "-1", "0", "1e308")


def _numeric_actions(tool: str):
    """``(subcommand, action)`` for every option whose type parses '1' as a number."""
    import importlib

    module = importlib.import_module(f"{tool}.cli")
    parser = module.build_parser()
    found = []
    for name, sub in subparsers(parser).items():
        for action in sub._actions:
            if not action.option_strings or action.type in (None, str) or action.choices:
                continue
            try:
                value = action.type("1")
            except Exception:  # noqa: BLE001 - not a number type
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            found.append((name, action))
    return found


# Values an option documents (or that are physically meaningful) although they are 0, -1 or
# 1e308; the rest of BAD_VALUES must be refused by the parser.
MEANINGFUL: dict[tuple[str, str, str], set[str]] = {
    ("flowsr", "downsample", "--snr-db"): {"0", "-1", "1e308"},  # any SNR in dB is an SNR
    ("flowsr", "phantom", "--swirl"): {"0"},  # no secondary flow
    ("flowsr", "train", "--phantom-swirl"): {"0"},
    ("flowsr", "evaluate", "--phantom-swirl"): {"0"},
    ("flowsr", "predict", "--threshold"): {"0"},  # a probability threshold in [0, 1]
    ("flowsr", "evaluate", "--threshold"): {"0"},
    ("flowsr", "train", "--alpha"): {"0"},  # no segmentation loss
    ("flowsr", "train", "--patch-cfd-covered"): {"0"},
    ("flowsr", "train", "--patch-cfd-coverage"): {"0"},
    ("flowsr", "train", "--patch-mri-coverage"): {"0"},
    ("perfdecon", "phantom", "--noise"): {"0"},  # a noise-free phantom
    ("streamvq", "train", "--commitment"): {"0"},
    ("streamvq", "train", "--kl-weight"): {"0"},
    ("streamvq", "train", "--decay"): {"0"},
    ("streamvq", "train", "--residual-layers"): {"0"},
    ("streamvq", "train", "--clip-grad-norm"): {"1e308"},  # never clips
    ("streamvq", "train", "--temperature"): {"1e308"},
    ("usenhance", "train", "--beta1"): {"0"},  # Adam accepts betas in [0, 1)
    ("usenhance", "train", "--beta2"): {"0"},
    ("usenhance", "train", "--net-n-dropout"): {"0"},
    ("usenhance", "train", "--val-images"): {"0"},
    ("usenhance", "train", "--loss-smooth-threshold"): {"0", "1e308"},  # always / never
    **{("usenhance", "train", f"--loss-{k}"): {"0"}  # a loss term switched off
       for k in ("adv", "cycle", "paired", "perceptual", "pix2pix-l1")},
    ("wdrcodec", "encode", "--mcpd-threshold"): {"0", "1e308"},  # no slice / every slice
    ("wdrcodec", "eval", "--mcpd-threshold"): {"0", "1e308"},
}

def _documented_valid(tool: str, sub: str, action, value: str) -> bool:
    """Whether ``--help`` documents ``value`` as meaningful for this option."""
    opt = max(action.option_strings, key=len)
    if value in MEANINGFUL.get((tool, sub, opt), set()):
        return True
    text = " ".join((action.help or "").split()).lower()
    default = action.default
    if isinstance(default, list | tuple):
        default = default[0] if default else None
    if value == "0":
        return default == 0 or any(
            k in text for k in ("0 =", "0:", "0 means", "[0,", "0-", "0 or", "= off", "seed")
        )
    if value == "-1":
        return "-1 =" in text or "-1:" in text or default == -1
    return False


def _numeric_params():
    params = []
    for tool in TOOLS:
        try:
            actions = _numeric_actions(tool if tool != "medshared" else "medshared")
        except ImportError:
            continue
        for sub, action in actions:
            opt = max(action.option_strings, key=len)
            multi = isinstance(action.nargs, int) and action.nargs > 1
            for value in BAD_VALUES:
                pid = f"{tool}-{sub}{opt}={value}"
                if _documented_valid(tool, sub, action, value):
                    continue
                if (f"numeric:{pid}" in NOT_YET_PASSING) != _PENDING_MODE:
                    continue
                if multi and value == "-inf":  # argparse reads "-inf" there as an option
                    continue
                params.append(pytest.param(tool, sub, opt, value, id=pid))
    return params


def _required_args(tool: str, sub: str) -> list[str]:
    """Dummy values for the positionals and required options of ``tool sub``."""
    import importlib

    module = importlib.import_module(f"{tool}.cli")
    parser = subparsers(module.build_parser())[sub]
    args: list[str] = []
    for action in parser._actions:
        n = action.nargs
        count = n if isinstance(n, int) else (0 if n in ("*", "?") else 1)
        if not action.option_strings:
            args += ["x"] * count
        elif action.required:
            args += [action.option_strings[0], *(["x"] * max(count, 1))]
    return args


@pytest.mark.parametrize(("tool", "sub", "opt", "value"), _numeric_params())
def test_numeric_option_is_validated_at_parse_time(tool, sub, opt, value):
    _need(tool)
    import importlib

    module = importlib.import_module(f"{tool}.cli")
    action = next(
        a for a in subparsers(module.build_parser())[sub]._actions if opt in a.option_strings
    )
    n = action.nargs
    count = n if isinstance(n, int) else 1
    argv = [sub, f"{opt}={value}" if count == 1 else opt, *([] if count == 1 else
            [value] + ["1"] * (count - 1)), *_required_args(tool, sub)]
    out, reached = parse_only(tool, argv)
    assert not reached, f"{tool} {' '.join(argv)}: accepted at parse time (the command would run)"
    assert_one_line(out, names=[opt])


def _help_params():
    import importlib

    params = []
    for tool in TOOLS:
        try:
            module = importlib.import_module(f"{tool}.cli")
        except ImportError:
            continue
        for name, sub in subparsers(module.build_parser()).items():
            for action in sub._actions:
                if not action.option_strings or action.help in (None, "==SUPPRESS=="):
                    continue
                if {"-h", "--debug", "--version"} & set(action.option_strings):
                    continue
                pid = f"{tool}-{name}{max(action.option_strings, key=len)}"
                if (f"help:{pid}" in NOT_YET_PASSING) == _PENDING_MODE:
                    params.append(pytest.param(tool, name, action.dest, id=pid))
    return params


@pytest.mark.parametrize(("tool", "sub", "dest"), _help_params())
def test_help_states_the_default_of_every_option(tool, sub, dest):
    """Every optional option's ``--help`` states its default (or that it is required)."""
    import importlib

    module = importlib.import_module(f"{tool}.cli")
    parser = subparsers(module.build_parser())[sub]
    action = next(a for a in parser._actions if a.dest == dest and a.option_strings)
    text = " ".join(parser._get_formatter()._expand_help(action).split()).lower()
    assert action.required or "default" in text or "required" in text, (
        f"{tool} {sub} {action.option_strings}: --help states no default: {text!r}"
    )


# ---------------------------------------------------------------------------------------------
# 6. Ctrl-C, SIGTERM, closed stdout
# ---------------------------------------------------------------------------------------------

SIGNAL_JOBS = [
    pytest.param("perfdecon", ["phantom", "o", "--size", "512", "--slices", "16", "--frames",
                               "60"], "o", id="perfdecon-phantom"),
    pytest.param("perfdecon", ["maps", "{ctp_big}", "--out", "o"], "o", id="perfdecon-maps",
                 marks=pytest.mark.slow),
    pytest.param("wdrcodec", ["encode", "{big_vol}", "o.wdr", "--lossless"], "o.wdr",
                 id="wdrcodec-encode"),
    pytest.param("usenhance", ["simulate", "o", "--n", "400", "--size", "256"], "o",
                 id="usenhance-simulate",
                 marks=pytest.mark.slow),
    pytest.param("flowsr", ["phantom", "--out", "o.h5", "--shape-x", "192", "--shape-y", "192",
                            "--shape-z", "96", "--frames", "40"], "o.h5", id="flowsr-phantom",
                 marks=pytest.mark.slow),
    pytest.param("streamvq", ["prepare", "--synthetic", "300", "--out", "o.h5"], "o.h5",
                 id="streamvq-prepare",
                 marks=pytest.mark.slow),
]


class _BigInputs:
    """Inputs big enough that the job is still running when the signal arrives (lazy)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __contains__(self, key: str) -> bool:
        return key in ("big_vol", "ctp_big")

    def __getitem__(self, key: str) -> Path:
        from medshared.io import write_image

        if key == "big_vol":
            path = self.root / "big_vol.nii.gz"
            if not path.exists():
                rng = np.random.default_rng(2)
                data = rng.normal(0, 1000, (256, 256, 160)).astype(np.int16)
                write_image(path, data, np.eye(4))
            return path
        path = self.root / "case" / "ctp.nii.gz"
        if not path.exists():
            _sh(self.root, [_bin("perfdecon"), "phantom", "case", "--size", "192", "--slices",
                            "8", "--frames", "40"])
        return path


@pytest.fixture(scope="session")
def big_inputs(tmp_path_factory) -> _BigInputs:
    return _BigInputs(tmp_path_factory.mktemp("big"))


def _signal_probe(tool, argv, target, signum, world, big_inputs, tmp_path):
    """Start a long job, signal it once it is working, check the exit and the folder."""
    _need(tool)
    merged = {**world, **{k[1:-1]: big_inputs[k[1:-1]] for k in argv if k[1:-1] in big_inputs}}
    args = _fill(argv, merged, tmp_path, None)
    before = snapshot(tmp_path)
    out = run([_bin(tool), *args], tmp_path, send=(_delay(tool), signum), timeout=90)
    if out.rc == 0:
        pytest.fail(f"finished before the signal; use a longer job\n{out.describe()}")
    assert_one_line(out, rc=130 if signum == SIGINT else 143)
    assert not leftovers(tmp_path), f"left behind: {leftovers(tmp_path)}"
    assert not (tmp_path / target).exists(), f"partial output {target} left"
    assert_unchanged(before, tmp_path)


def _delay(tool: str) -> float:
    """Seconds to wait before the signal: start-up of the tool plus ~1.5 s of work."""
    return {"streamvq": 9.0, "usenhance": 9.0, "flowsr": 9.0, "wdrcodec": 2.5}.get(tool, 3.0)


@pytest.mark.parametrize(("tool", "argv", "target"), _keep("sigint", SIGNAL_JOBS))
def test_ctrl_c_is_exit_130_one_line_and_no_partial_output(
    tool, argv, target, world, big_inputs, tmp_path
):
    _signal_probe(tool, argv, target, SIGINT, world, big_inputs, tmp_path)


@pytest.mark.parametrize(("tool", "argv", "target"), _keep("sigterm", SIGNAL_JOBS))
def test_sigterm_is_exit_143_and_no_temp_files(tool, argv, target, world, big_inputs, tmp_path):
    _signal_probe(tool, argv, target, SIGTERM, world, big_inputs, tmp_path)


def _help_argvs():
    params = []
    for tool in TOOLS:
        params.append(pytest.param(tool, ["--help"], id=f"{tool}-help"))
    params += [
        pytest.param("wdrcodec", ["info", "{wdr}"], id="wdrcodec-info"),
        pytest.param("medshared", ["compare", "{vol}", "{vol2}"], id="medshared-compare"),
        pytest.param("wdrcodec", ["encode", "--help"], id="wdrcodec-encode-help"),
        pytest.param("perfdecon", ["maps", "--help"], id="perfdecon-maps-help"),
        pytest.param("flowsr", ["train", "--help"], id="flowsr-train-help"),
    ]
    return params


@pytest.mark.parametrize(("tool", "argv"), _keep("pipe", _help_argvs()))
def test_closed_stdout_prints_nothing(tool, argv, world, tmp_path):
    """``tool ... | head -0``: the reader is gone; no traceback, no message, exit 0."""
    _need(tool)
    args = _fill(argv, world, tmp_path, None)
    out = run([_bin(tool), *args], tmp_path, close_stdout=True)
    assert not out.timed_out and "Traceback" not in out.stderr, out.describe()
    assert out.stderr.strip() == "", out.describe()
    assert out.rc == 0, out.describe()


def test_the_probe_helpers_detect_what_they_must():
    """The helpers themselves: a traceback, two lines or a changed folder are caught."""
    from _probes_lib import Outcome, user_lines

    assert user_lines("\r 40%|####  | 4/10 [00:01<00:02, 2.1it/s]\rtool: error: x\n") == [
        "tool: error: x"
    ]
    assert user_lines("tool: warning: w\ntool: error: x\n") == ["tool: warning: w",
                                                                "tool: error: x"]
    with pytest.raises(AssertionError):
        assert_one_line(Outcome(["t"], 2, "", "Traceback (most recent call last):\nE\n"))
    with pytest.raises(AssertionError):
        assert_one_line(Outcome(["t"], 0, "", "t: error: x\n"))
    assert math.isfinite(assert_one_line(Outcome(["t"], 2, "", "t: error: f.nii\n"),
                                         names=["f.nii"]).count("f"))


HANDLER_CHECKED = [
    # wdrcodec checks these in the command, before reading the input: one line, exit 2.
    pytest.param("wdrcodec", ["encode", "{vol}", "o.wdr"], opt, value, id=f"encode{opt}={value}")
    for opt in ("--bpv", "--psnr", "--float-step") for value in ("0", "-1")
] + [
    pytest.param("wdrcodec", ["decode", "{wdr}", "o.nii.gz"], opt, value,
                 id=f"decode{opt}={value}")
    for opt in ("--bpv", "--max-memory") for value in ("0", "-1")
]


@pytest.mark.parametrize(("tool", "argv", "opt", "value"), _keep("handler", HANDLER_CHECKED))
def test_numeric_option_checked_by_the_command_before_any_work(
    tool, argv, opt, value, world, tmp_path
):
    """Options a command refuses itself (not at parse time): still one line and no output."""
    _need(tool)
    args = _fill(argv, world, tmp_path, None)
    if opt == "--float-step":
        args += ["--lossless"]
    elif opt != "--bpv" and "encode" in args:
        args += ["--bpv", "1"] if opt != "--psnr" else []
    before = snapshot(tmp_path)
    out = run([_bin(tool), *args, f"{opt}={value}"], tmp_path)
    assert_one_line(out, names=[opt])
    assert_unchanged(before, tmp_path)


# ---------------------------------------------------------------------------------------------
# 7. More reproductions: folders into themselves, prefixes that hit an input, header units,
#    DICOM garbage, batch outputs, the demo registry's --json
# ---------------------------------------------------------------------------------------------


def _setup_enhance_into_itself(folder: Path, world) -> list[str]:
    imgs = folder / "imgs"
    imgs.mkdir()
    copy_into(Path(world["png"]), imgs, "0000.png")
    copy_into(Path(world["png"]), imgs, "0001.png")
    return ["enhance", "imgs", "imgs", "--ckpt", "{us_model}", "--quiet"]


def _setup_prefix_hits_input(folder: Path, world) -> list[str]:
    import nibabel as nib

    rng = np.random.default_rng(0)
    for c in "uvw":
        data = rng.normal(0, 0.3, (8, 8, 4, 3)).astype(np.float32)
        nib.save(nib.Nifti1Image(data, np.diag([8.0, 8.0, 8.0, 1.0])), folder / f"p_{c}.nii.gz")
    return ["predict", "--nifti", "p_u.nii.gz", "p_v.nii.gz", "p_w.nii.gz", "--venc", "1",
            "--model", "{flow_model}", "--out", "p.nii.gz", "--quiet"]


def _setup_interpolate_blocked(folder: Path, world) -> list[str]:
    (folder / "o" / "interp_001.trk").mkdir(parents=True)
    return ["interpolate", "{trk}", "{trk}", "--weights", "{svq_model}", "--out", "o",
            "--steps", "3"]


def _setup_series_header(unit: str):
    def setup(folder: Path, world) -> list[str]:
        import nibabel as nib

        _req(world, "ctp")
        img = nib.load(world["ctp"])
        hdr = img.header.copy()
        if unit == "nan":
            hdr["pixdim"][4] = np.nan
        else:
            hdr.set_xyzt_units("mm", unit)
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine, hdr), folder / "s.nii.gz")
        return ["maps", "s.nii.gz", "--out", "m", "--quiet"]

    return setup


def _setup_dicom_garbage(tool: str):
    def setup(folder: Path, world) -> list[str]:
        from _probes_lib import random_bytes

        if tool == "usenhance":
            (folder / "r.dcm").write_bytes(random_bytes(3000))
            return ["enhance", "r.dcm", "o.png", "--ckpt", "{us_model}", "--quiet"]
        (folder / "dcm").mkdir()
        (folder / "dcm" / "r.dcm").write_bytes(random_bytes(3000))
        return ["encode", "dcm", "o.wdr", "--bpv", "1"]

    return setup


def _setup_outdir_fifo(folder: Path, world) -> list[str]:
    os.mkfifo(folder / "given_vol.wdr")
    return ["encode", "{vol}", "--out-dir", ".", "--bpv", "1"]


def _setup_demo_json_fifo(folder: Path, world) -> list[str]:
    os.mkfifo(folder / "rows.json")
    return ["demo", "--only", "wdrcodec", "--quick", "--json", "rows.json"]


EXTRA = [
    pytest.param("usenhance", _setup_enhance_into_itself, ["0000.png", "imgs"],
                 id="usenhance-enhance-folder-into-itself"),
    pytest.param("flowsr", _setup_prefix_hits_input, ["p_u.nii.gz"],
                 id="flowsr-predict-prefix-is-an-input"),
    pytest.param("streamvq", _setup_interpolate_blocked, ["interp_001.trk"],
                 id="streamvq-interpolate-blocked-member"),
    pytest.param("perfdecon", _setup_series_header("usec"), ["s.nii.gz"],
                 id="perfdecon-maps-usec-time-unit"),
    pytest.param("perfdecon", _setup_series_header("nan"), ["s.nii.gz"],
                 id="perfdecon-maps-nan-frame-interval"),
    pytest.param("usenhance", _setup_dicom_garbage("usenhance"), ["r.dcm"],
                 id="usenhance-enhance-random-dicom"),
    pytest.param("wdrcodec", _setup_dicom_garbage("wdrcodec"), ["r.dcm"],
                 id="wdrcodec-encode-random-dicom-folder"),
    pytest.param("wdrcodec", _setup_outdir_fifo, ["given_vol.wdr"],
                 id="wdrcodec-encode-out-dir-fifo"),
    pytest.param("medshared", _setup_demo_json_fifo, ["rows.json"],
                 id="medshared-demo-json-fifo"),
]


@pytest.mark.parametrize(("tool", "setup", "names"), _keep("extra", EXTRA))
def test_more_reproductions(tool, setup, names, world, tmp_path):
    _need(tool)
    args = _fill(setup(tmp_path, world), world, tmp_path, None)
    before = snapshot(tmp_path)
    inprocess = tool in TORCH_TOOLS and not any((tmp_path / a).is_fifo() for a in args
                                                if (tmp_path / a).exists())
    out = _invoke(tool, args, tmp_path, inprocess=inprocess)
    assert_one_line(out, names=names)
    assert_unchanged(before, tmp_path)
