"""Cohort runs of ``perfdecon maps``: many cases in one process (imports paid once).

Inputs (:func:`discover_cases`): NIfTI files, DICOM series folders (one case each), folders
holding NIfTI files (one case per file), and ISLES18 roots
(``case_N/SMIR.Brain.XX.O.CT_4DPWI.*/*.nii``). Each case is written to its own
folder ``OUT/<case name>/`` through :func:`perfdecon.maps_job.run_maps` (so each case's set is
whole or absent); a failing case is reported with its one-line reason and the batch goes on.
``OUT/cohort.csv`` and ``OUT/cohort.json`` hold the per-case table.
"""

from __future__ import annotations

import csv
import io
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from perfdecon.errors import PerfdeconError

NIFTI_SUFFIXES = (".nii", ".nii.gz")
REPORT_FILES = ("cohort.csv", "cohort.json")
_CASE_RE = re.compile(r"^case_\d+$")


@dataclass(frozen=True)
class CaseInput:
    """One case of a cohort: its name (the output sub-folder), the series file, whether it was
    found inside a folder (then ``--out`` is a cohort root even for a single case), and the
    one-line reason it cannot run, if any."""

    name: str
    series: Path
    from_folder: bool = False
    problem: str = ""
    """Why the case cannot run (a missing input, a FIFO, a broken ISLES18 case folder); such a
    case becomes a failed row of the report instead of stopping the batch."""


@dataclass
class CaseOutcome:
    """One row of the cohort table (volumes in mL, times in s; ``error`` empty on success)."""

    name: str
    series: str
    status: str
    out: str = ""
    core_ml: float | None = None
    penumbra_ml: float | None = None
    brain_ml: float | None = None
    aif_quality: float | None = None
    wall_s: float = 0.0
    error: str = ""


@dataclass
class CohortReport:
    """Result of :func:`run_cohort`: per-case rows, totals and the report files."""

    rows: list[CaseOutcome]
    wall_s: float
    out: Path
    files: list[Path] = field(default_factory=list)

    @property
    def n_failed(self) -> int:
        return sum(r.status != "ok" for r in self.rows)


def _stem(p: Path) -> str:
    name = p.name
    for suf in (".nii.gz", ".nii"):
        if name.endswith(suf):
            return name[: -len(suf)]
    return p.stem


def _isles_series(case_dir: Path) -> Path:
    found = sorted(case_dir.glob("*CT_4DPWI*/*.nii")) + sorted(case_dir.glob("*CT_4DPWI*/*.nii.gz"))
    if len(found) != 1:
        raise PerfdeconError(
            f"{case_dir}: expected one CT_4DPWI .nii file (ISLES18 layout), found {len(found)}"
        )
    return found[0]


def _not_regular(p: Path) -> str:
    """Why ``p`` (named like a series file) cannot be read, or "" for a regular file.

    ``os.stat`` only, so a FIFO is never opened (opening one blocks until a writer appears).
    """
    import os
    import stat

    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        return "no such file (a broken symbolic link?)"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    for test, what in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return f"is {what}, not a regular file; refusing to read it"
    return ""


def _folder_cases(p: Path) -> list[CaseInput]:
    """The cases of one input folder (ISLES18 root, folder of NIfTI files, or a DICOM series)."""
    subs = sorted(
        (d for d in p.iterdir() if d.is_dir() and _CASE_RE.match(d.name)),
        key=lambda d: int(d.name.split("_")[1]),
    )
    if subs:
        cases = []
        for d in subs:
            try:
                cases.append(CaseInput(d.name, _isles_series(d), True))
            except PerfdeconError as exc:
                cases.append(CaseInput(d.name, d, True, problem=str(exc)))
        return cases
    named = sorted(f for f in p.iterdir() if f.name.endswith(NIFTI_SUFFIXES) and not f.is_dir())
    if named:
        return [CaseInput(_stem(f), f, True, problem=_not_regular(f)) for f in named]
    if any(f.is_file() for f in p.iterdir()):  # a DICOM series folder: one case
        return [CaseInput(p.name or "series", p, False)]
    raise PerfdeconError(
        f"{p}: folder holds no .nii/.nii.gz series, no DICOM files and no ISLES18 case_N folders"
    )


def discover_cases(inputs: list[str | Path]) -> list[CaseInput]:
    """The cases named by ``inputs`` (files, folders of NIfTI files, ISLES18 roots), in order.

    With a single input, a problem with it is an error. With several, an input that does not
    exist or an empty folder becomes a case with :attr:`CaseInput.problem` set (a failed row of
    the report); so does, inside a folder, a ``.nii``/``.nii.gz`` name that is not a regular
    file (a FIFO, a broken link) and an ISLES18 ``case_N`` folder without exactly one series.

    Raises
    ------
    PerfdeconError
        A single input that does not exist, or a folder with neither NIfTI files nor DICOM
        files nor ``case_N`` folders (named in the message).
    """
    cases: list[CaseInput] = []
    single = len(inputs) == 1
    for item in inputs:
        p = Path(item)
        try:
            if p.is_dir():
                cases += _folder_cases(p)
            elif p.exists() or p.is_symlink():
                cases.append(CaseInput(_stem(p), p, False))
            else:
                raise PerfdeconError(f"{p}: no such file or folder")
        except PerfdeconError as exc:
            if single:
                raise
            cases.append(CaseInput(_stem(p) or "input", p, False, problem=str(exc)))
    seen: dict[str, int] = {}
    unique = []
    for c in cases:  # two inputs with the same stem get _2, _3 ... folders
        n = seen.get(c.name, 0) + 1
        seen[c.name] = n
        unique.append(c if n == 1 else CaseInput(f"{c.name}_{n}", c.series, c.from_folder,
                                                 c.problem))
    return unique


def _run_one(case: CaseInput, out_root: Path, kwargs: dict[str, Any]) -> CaseOutcome:
    """Run one case; a user error becomes a failed row, a bug keeps its type in the message."""
    from medshared.errors import MedsharedError
    from perfdecon.maps_job import run_maps

    t0 = time.perf_counter()
    row = CaseOutcome(name=case.name, series=str(case.series), status="ok",
                      out=str(out_root / case.name))
    if case.problem:
        row.status, row.out = "failed", ""
        row.error = case.problem if str(case.series) in case.problem else (
            f"{case.series}: {case.problem}")
        return row
    try:
        run = run_maps(case.series, out_root / case.name, **kwargs)
        s = run.summary
        row.core_ml = s["core_volume_ml"]
        row.penumbra_ml = s["penumbra_volume_ml"]
        row.brain_ml = s["brain_volume_ml"]
        row.aif_quality = s["aif"]["quality"]
        row.error = "; ".join(run.warnings)
    except (MedsharedError, OSError, MemoryError) as exc:
        from medshared.runner import user_error_message

        row.status = "failed"
        row.error = user_error_message(exc) or str(exc)
    except Exception as exc:  # noqa: BLE001 - a bug in one case must not stop the batch
        row.status = "failed"
        row.error = f"internal error ({type(exc).__name__}: {exc}); please report it"
    if row.status != "ok":
        row.out = ""  # nothing was written for it (the set is whole or absent)
    row.wall_s = round(time.perf_counter() - t0, 3)
    return row


def _worker_init() -> None:
    """One BLAS/OpenMP thread per worker process (set before numpy is imported there; torch,
    imported only for a learned AIF, reads the same variables)."""
    import os

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


def run_cohort(
    cases: list[CaseInput],
    out: Path,
    *,
    jobs: int = 1,
    progress: bool = False,
    **kwargs: Any,
) -> CohortReport:
    """Run :func:`perfdecon.maps_job.run_maps` on every case into ``out/<name>/``.

    Parameters
    ----------
    cases:
        From :func:`discover_cases`.
    out:
        Cohort root (created); ``cohort.csv`` and ``cohort.json`` are written there.
    jobs:
        Worker processes (1: all cases in this process, one after the other).
    progress:
        Show a progress bar over the cases.
    **kwargs:
        Passed to :func:`~perfdecon.maps_job.run_maps` (``config``, ``aif``, ``mask``, ``dt``,
        ``force``).
    """
    from tqdm.auto import tqdm

    from medshared.io.outputs import check_output_folder

    check_output_folder(out, REPORT_FILES, [c.series for c in cases], what="--out")
    out.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    bar = tqdm(total=len(cases), desc="cases", unit="case", disable=not progress)
    rows: list[CaseOutcome] = []
    try:
        if jobs <= 1 or len(cases) <= 1:
            for c in cases:
                rows.append(_run_one(c, out, kwargs))
                bar.update(1)
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            ctx = mp.get_context("spawn")
            with ProcessPoolExecutor(min(jobs, len(cases)), mp_context=ctx,
                                     initializer=_worker_init) as pool:
                futures = [pool.submit(_run_one, c, out, kwargs) for c in cases]
                for f in futures:
                    rows.append(f.result())
                    bar.update(1)
    finally:
        bar.close()
    report = CohortReport(rows=rows, wall_s=round(time.perf_counter() - t0, 3), out=out)
    _write_reports(report)
    return report


def _csv_text(rows: list[CaseOutcome]) -> str:
    buf = io.StringIO()
    names = list(asdict(rows[0])) if rows else [f for f in CaseOutcome.__dataclass_fields__]
    w = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in asdict(r).items()})
    return buf.getvalue()


def _write_reports(report: CohortReport) -> None:
    from medshared.io import atomic_write_text
    from perfdecon.jsonout import write_json

    csv_p, json_p = report.out / "cohort.csv", report.out / "cohort.json"
    atomic_write_text(csv_p, _csv_text(report.rows))
    write_json(json_p, {
        "n_cases": len(report.rows),
        "n_failed": report.n_failed,
        "wall_s": report.wall_s,
        "cases": [asdict(r) for r in report.rows],
    })
    report.files = [csv_p, json_p]


def format_cohort(report: CohortReport) -> str:
    """Plain-text per-case table and totals."""
    lines = [f"{'case':<24} {'status':<7} {'core mL':>8} {'pen. mL':>8} {'AIF q':>6} "
             f"{'wall s':>7}  message"]
    for r in report.rows:
        def f(v, fmt):
            return format(v, fmt) if v is not None else "-"
        lines.append(
            f"{r.name:<24} {r.status:<7} {f(r.core_ml, '8.1f'):>8} {f(r.penumbra_ml, '8.1f'):>8} "
            f"{f(r.aif_quality, '6.2f'):>6} {r.wall_s:>7.2f}  {r.error}"
        )
    n = len(report.rows)
    lines.append(
        f"{n - report.n_failed} of {n} cases ok, {report.n_failed} failed; {report.wall_s:.1f} s "
        f"({report.wall_s / max(n, 1):.2f} s per case); report {report.out / 'cohort.csv'}"
    )
    return "\n".join(lines)


__all__ = [
    "REPORT_FILES",
    "CaseInput",
    "CaseOutcome",
    "CohortReport",
    "discover_cases",
    "format_cohort",
    "run_cohort",
]
