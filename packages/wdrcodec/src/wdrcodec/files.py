"""File-level jobs behind ``wdrcodec encode``/``decode``: one file, or many in one process.

Every output path is checked before any work (:func:`medshared.io.outputs.check_output_path`:
never an input, a symlink, a folder, a FIFO or a device; the parent must exist). Inputs must be
regular files (or a DICOM series folder for encode), so a FIFO named ``x.npy`` is refused instead
of blocking. Outputs are written atomically. Batch jobs (:func:`encode_files`,
:func:`decode_files`) pay the interpreter and JIT start-up once for the whole list, optionally
over a process pool (``jobs``), and report every file; a failing file does not stop the others.
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from wdrcodec.config import DecodeConfig, EncodeConfig
from wdrcodec.errors import WdrError

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".npy")


@dataclass(frozen=True)
class EncodeReport:
    """What one encode did: sizes, rate, and for float input the quantisation step and the
    largest absolute error (input units; the float data are not reproduced bit for bit)."""

    input: str
    output: str
    nbytes: int
    n_voxels: int
    input_nbytes: int
    exact: bool
    lossless: bool
    float_step: float | None
    float_max_error: float | None
    dicom_attributes: str = ""  # "kept" / "not kept (reason)" for DICOM input, else ""

    @property
    def bpv(self) -> float:
        return self.nbytes * 8 / self.n_voxels

    @property
    def ratio(self) -> float:
        return self.input_nbytes / self.nbytes


@dataclass(frozen=True)
class DecodeReport:
    """What one decode did (see :class:`wdrcodec.codec.Decoded`)."""

    input: str
    output: str
    bytes_used: int
    truncated: bool
    complete: bool
    unverified_bytes: int
    tail_used: bool
    prefix: bool


@dataclass(frozen=True)
class BatchItem:
    """One file of a batch: its report, or the one-line error that stopped it."""

    input: str
    report: EncodeReport | DecodeReport | None
    error: str | None


def check_input(path: Path, *, folder_ok: bool = False) -> Path:
    """Refuse a missing input, or one that is neither a regular file nor (``folder_ok``) a
    folder; never opens it, so a FIFO cannot block the command."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise WdrError(f"{path}: no such file or folder") from None
    except OSError as exc:
        raise WdrError(f"{path}: cannot read ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        if folder_ok:
            return path
        raise WdrError(f"{path}: is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise WdrError(
            f"{path}: is not a regular file (a FIFO, socket or device); refusing to read"
        )
    if not os.access(path, os.R_OK):
        raise WdrError(f"{path}: permission denied")
    return path


def check_output(path: Path, inputs: Sequence[Path], what: str = "output") -> Path:
    """The shared output rule (see module docstring), raised as :class:`WdrError`."""
    from medshared.errors import MedsharedError
    from medshared.io.outputs import check_output_path

    try:
        return check_output_path(path, inputs, what=what)
    except MedsharedError as exc:
        raise WdrError(str(exc)) from None


def check_output_folder(path: Path, inputs: Sequence[Path], what: str = "output folder") -> Path:
    """The shared output-folder rule, raised as :class:`WdrError`."""
    from medshared.errors import MedsharedError
    from medshared.io.outputs import check_output_folder as check

    try:
        return check(path, (), inputs, what=what)
    except MedsharedError as exc:
        raise WdrError(str(exc)) from None


def read_wdr(path: Path) -> bytes:
    """The bytes of a ``.wdr`` file (checked to be a readable regular file first)."""
    check_input(path)
    return Path(path).read_bytes()


def volume_layout(vol) -> tuple[object, dict]:
    """``(array, axis keywords for encode)`` of a volume read by :func:`wdrcodec.io.read_volume`.

    NIfTI and DICOM data are ``(X, Y, Z[, T])`` (slices along axis 2, time along axis 3); a 2D
    NIfTI image gets a length-1 Z axis so it keeps its orientation. ``.npy`` arrays use the
    codec's defaults (``(Z, Y, X)`` / ``(T, Z, Y, X)``).
    """
    array = vol.array
    spacing = vol.spacing
    if getattr(vol, "axes", "xyz") != "xyz":
        return array, {"spacing": spacing}
    if array.ndim == 2:
        array = array[:, :, None]
        spacing = None if spacing is None else (*tuple(spacing)[:2], 1.0)
    kw: dict = {"spacing": spacing, "slice_axis": 2, "affine": vol.affine}
    if array.ndim == 4:
        kw["time_axis"] = 3
    return array, kw


def encode_file(inp: Path, out: Path, config: EncodeConfig) -> EncodeReport:
    """Read ``inp`` (NIfTI, DICOM folder, ``.npy``), encode with ``config``, write ``out``."""
    from medshared.io import atomic_write_bytes
    from wdrcodec.codec import encode_full
    from wdrcodec.io import read_volume

    inp, out = Path(inp), Path(out)
    check_input(inp, folder_ok=True)
    check_output(out, [inp])
    vol = read_volume(inp)
    array, kw = volume_layout(vol)
    note, meta = "", None
    if getattr(vol, "source", "") == "dicom" and getattr(vol, "image", None) is not None:
        from wdrcodec.dicom import series_attributes

        meta = series_attributes(vol.image)
        note = "kept" if meta is not None else "not kept (multi-frame or 4D series)"
    res = encode_full(array, config, name=str(inp), metadata=meta, **kw)
    atomic_write_bytes(out, res.data)
    return EncodeReport(
        str(inp),
        str(out),
        len(res.data),
        int(array.size),
        int(array.nbytes),
        res.exact,
        config.lossless,
        res.float_step,
        res.float_max_error,
        note,
    )


def decode_file(
    inp: Path, out: Path, limits: DecodeConfig, *, trust_tail: bool = False, dicom: bool = False
) -> DecodeReport:
    """Decode the ``.wdr`` file ``inp`` (or a ``limits.bpv`` prefix) to ``out`` (NIfTI/.npy;
    with ``dicom`` a folder receiving a DICOM series, see :mod:`wdrcodec.dicom`)."""
    from wdrcodec.codec import decode_full
    from wdrcodec.io import write_output

    inp, out = Path(inp), Path(out)
    check_input(inp)
    if dicom:
        check_output_folder(out, [inp])
    else:
        check_output(out, [inp])
        if not str(out).lower().endswith(VOLUME_SUFFIXES):
            raise WdrError(f"{out}: unsupported output (use .nii, .nii.gz, .npy or --format dicom)")
    data = read_wdr(inp)
    res = decode_full(data, name=str(inp), limits=limits, trust_tail=trust_tail)
    if dicom:
        from wdrcodec.dicom import parse_attributes, write_series

        slices = parse_attributes(res.header.meta, str(inp))
        if slices is None:
            raise WdrError(
                f"{inp}: keeps no DICOM attributes (not encoded from a single-frame DICOM "
                "series); decode to .nii.gz or .npy instead"
            )
        exact = res.header.lossless and res.complete and not res.truncated
        exact = exact and not res.header.dtype.startswith("float")
        nbytes = res.array.size * res.array.dtype.itemsize
        write_series(
            out, res.array, slices, exact=exact, ratio=nbytes / res.bytes_used, inputs=(inp,)
        )
    else:
        write_output(out, res.array, res.header)
    return DecodeReport(
        str(inp),
        str(out),
        res.bytes_used,
        res.truncated,
        res.complete,
        res.unverified_bytes,
        res.tail_used,
        limits.bpv is not None,
    )


def expand_inputs(
    items: Iterable[str], suffixes: Sequence[str], *, dicom_folders: bool
) -> list[Path]:
    """Files named by ``items``: files, globs (expanded here when the shell did not), and
    folders (their files with one of ``suffixes``; a folder without any is a DICOM series when
    ``dicom_folders``). Order is kept, duplicates dropped."""
    out: list[Path] = []
    for item in items:
        paths = [Path(p) for p in sorted(glob.glob(item))] if glob.has_magic(item) else [Path(item)]
        if not paths:
            raise WdrError(f"{item}: no file matches this pattern")
        for p in paths:
            if p.is_dir():
                found = sorted(
                    q
                    for q in p.iterdir()
                    if q.is_file() and q.name.lower().endswith(tuple(suffixes))
                )
                if found:
                    out.extend(found)
                elif dicom_folders:
                    out.append(p)
                else:
                    raise WdrError(f"{p}: folder holds no {', '.join(suffixes)} file")
            else:
                out.append(p)
    seen: set[Path] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def output_name(inp: Path, suffix: str) -> str:
    """``brain.nii.gz`` -> ``brain`` + ``suffix`` (the stem without any volume suffix)."""
    name = inp.name
    for s in (*VOLUME_SUFFIXES, ".wdr"):
        if name.lower().endswith(s):
            name = name[: -len(s)]
            break
    return name + suffix


def plan_outputs(inputs: Sequence[Path], out_dir: Path, suffix: str) -> list[Path]:
    """Output path of every input in ``out_dir`` (``suffix`` ``""``: a folder per input);
    refuses clashes and unsafe paths up front."""
    if not out_dir.is_dir():
        raise WdrError(f"--out-dir {out_dir}: not an existing folder")
    outs = [out_dir / output_name(p, suffix) for p in inputs]
    seen: dict[Path, Path] = {}
    for inp, out in zip(inputs, outs):
        if out in seen:
            raise WdrError(f"--out-dir: {seen[out]} and {inp} would both be written to {out}")
        seen[out] = inp
        if suffix:
            check_output(out, list(inputs), what="output")
        else:
            check_output_folder(out, list(inputs))
    return outs


def batch_threads(threads: int, jobs: int, n_inputs: int) -> int:
    """Threads per file of a batch: ``threads`` if given (> 0), else all cores shared out among
    the processes that run at once (``min(jobs, n_inputs)``), so jobs x threads never
    oversubscribes the cores (``--jobs 2`` on 2 cores: 1 thread per file)."""
    from wdrcodec.config import resolve_threads

    return resolve_threads(threads, max(1, min(jobs, n_inputs)))


def _run(job: Callable, inp: Path, *args) -> BatchItem:
    from medshared.runner import user_error_message

    try:
        return BatchItem(str(inp), job(inp, *args), None)
    except Exception as exc:  # noqa: BLE001 - a user error on one file must not stop the batch
        msg = user_error_message(exc)
        if msg is None:
            raise
        return BatchItem(str(inp), None, msg)


def run_batch(
    job: Callable,
    inputs: Sequence[Path],
    outputs: Sequence[Path],
    args: tuple,
    jobs: int = 1,
    progress: Callable[[BatchItem], None] | None = None,
) -> list[BatchItem]:
    """Run ``job(inp, out, *args)`` for every pair, in this process or a pool of ``jobs``."""
    items: list[BatchItem] = []
    if jobs <= 1 or len(inputs) <= 1:
        for inp, out in zip(inputs, outputs):
            item = _run(job, inp, out, *args)
            items.append(item)
            if progress:
                progress(item)
        return items
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # fork: the workers inherit the loaded JIT kernels, so start-up is paid once
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx)
    try:
        futures = [pool.submit(_run, job, inp, out, *args) for inp, out in zip(inputs, outputs)]
        for fut in futures:
            item = fut.result()
            items.append(item)
            if progress:
                progress(item)
    except BaseException:
        # Ctrl-C / SIGTERM / a bug: start no further file; running ones end (atomic writes)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return items


def warm_kernels() -> None:
    """Load (or, on a first run, compile) the JIT kernels before a pool forks."""
    from wdrcodec.jit import ensure_compiled

    ensure_compiled()
