"""medshared.io._limits and the readers' size checks: header claims never allocate.

Nothing here allocates more than a few MB: huge claims are written as headers only, and the
available memory is monkeypatched where a test needs a claim that the file could hold.
"""

from __future__ import annotations

import gzip
import time
import tracemalloc

import nibabel as nib
import numpy as np
import pytest

import medshared.io._limits as limits
from medshared.errors import AllocationError, MedsharedError
from medshared.io import check_allocation, read_image, read_nifti, write_nifti


def _header(shape, dtype=np.int16) -> bytes:
    """A NIfTI header (NIfTI-2 when a dimension exceeds NIfTI-1's int16) and nothing else."""
    big = max(shape) > 32767
    h = nib.Nifti2Header() if big else nib.Nifti1Header()
    h.set_data_shape(shape)
    h.set_data_dtype(dtype)
    h["vox_offset"] = 544 if big else 352
    return h.binaryblock + b"\0" * 4


# ----------------------------------------------------------------------------- check_allocation


def test_check_allocation_against_available_memory_and_explicit_limit(monkeypatch):
    monkeypatch.setattr(limits, "available_memory", lambda: 1000)
    check_allocation(900, "a.nii", "voxel data")  # within 90 %
    with pytest.raises(
        AllocationError,
        match=r"a\.nii: voxel data needs 1.95 KiB, more than the "
        r"1000 B of memory available",
    ):
        check_allocation(2000, "a.nii", "voxel data")
    err = pytest.raises(AllocationError, check_allocation, 2000, "a.nii").value
    assert isinstance(err, MemoryError) and isinstance(err, MedsharedError)
    # an explicit limit replaces the memory check, both ways, and the hint is appended
    check_allocation(5000, "a.nii", limit=10_000)
    with pytest.raises(
        AllocationError,
        match=r"more than the limit of 97.7 KiB; raise it with "
        r"--max-memory",
    ):
        check_allocation(200_000, "a.nii", limit=100_000, hint="raise it with --max-memory")
    with pytest.raises(MedsharedError, match="negative size"):
        check_allocation(-1, "a.nii")


def test_available_memory_reads_meminfo_and_cgroup(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  16000000 kB\nMemFree: 100 kB\nMemAvailable:   8000000 kB\n")
    cgroup = tmp_path / "cg"
    cgroup.mkdir()
    monkeypatch.setattr(limits, "_MEMINFO", meminfo)
    monkeypatch.setattr(limits, "_CGROUP", cgroup)
    assert limits.available_memory() == 8_000_000 * 1024
    (cgroup / "memory.max").write_text("max\n")  # no limit set
    (cgroup / "memory.current").write_text("1000\n")
    assert limits.available_memory() == 8_000_000 * 1024
    (cgroup / "memory.max").write_text(f"{3 << 30}\n")
    (cgroup / "memory.current").write_text(f"{1 << 30}\n")
    assert limits.available_memory() == 2 << 30  # the container's room is smaller
    monkeypatch.setattr(limits, "_MEMINFO", tmp_path / "absent")
    assert limits.available_memory() == 2 << 30
    monkeypatch.setattr(limits, "_CGROUP", tmp_path / "absent")
    assert limits.available_memory() is None


def test_real_machine_reports_some_memory():
    avail = limits.available_memory()
    assert avail is None or avail > 16 << 20


# ----------------------------------------------------------------------------- NIfTI claims


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("shape", [(1024, 1024, 256, 30), (60000, 60000, 60000), (32767,) * 3])
def test_nifti_claims_are_refused_fast_without_allocating(tmp_path, suffix, shape):
    f = tmp_path / f"claim{suffix}"
    if suffix == ".nii.gz":
        with gzip.open(f, "wb") as fh:
            fh.write(_header(shape))
        assert f.stat().st_size < 100  # a 73-byte-class file
    else:
        f.write_bytes(_header(shape))
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(MedsharedError) as info:
        read_image(f)
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    msg = str(info.value)
    assert "\n" not in msg and str(f) in msg and "truncated or corrupt" in msg
    assert f"shape {shape}" in msg
    assert elapsed < 1.0 and peak < 20e6


def test_nifti_claim_the_file_could_hold_but_memory_cannot(tmp_path, monkeypatch):
    f = tmp_path / "zeros.nii.gz"
    write_nifti(f, np.zeros((128, 128, 64), np.float32))  # 4 MiB of zeros, ~4 KB compressed
    monkeypatch.setattr(limits, "available_memory", lambda: 1 << 20)
    with pytest.raises(
        AllocationError,
        match=r"zeros\.nii\.gz: voxel data \(128, 128, 64\) "
        r"float32 needs 4 MiB",
    ):
        read_nifti(f)


def test_nifti_gz_stream_shorter_than_its_header(tmp_path):
    f = tmp_path / "short.nii.gz"
    with gzip.open(f, "wb") as fh:
        fh.write(_header((40, 40, 40)) + np.random.default_rng(0).bytes(60_000))
    with pytest.raises(
        MedsharedError,
        match=r"short\.nii\.gz: truncated: the header declares "
        r"128000 bytes .* the file holds 60000",
    ):
        read_nifti(f)


def test_nifti_gz_with_bad_crc_is_corrupt(tmp_path):
    f = tmp_path / "crc.nii.gz"
    write_nifti(f, np.arange(1000, dtype=np.float32).reshape(10, 10, 10))
    raw = bytearray(f.read_bytes())
    raw[-8] ^= 0xFF  # the CRC32 in the gzip trailer
    f.write_bytes(bytes(raw))
    with pytest.raises(MedsharedError, match=r"crc\.nii\.gz: cannot read, file is corrupt"):
        read_nifti(f)


def test_nifti_header_problems_are_kept_not_printed(tmp_path, capsys):
    f = tmp_path / "odd.nii"
    img = nib.Nifti1Image(np.ones((3, 4, 5, 6), np.float32), np.diag([2.0, 2.0, 2.0, 1.0]))
    img.header["pixdim"][4] = np.nan  # frame interval
    nib.save(img, f)
    out = read_nifti(f)
    assert out.dt is None and out.spacing == (2.0, 2.0, 2.0)
    notes = " | ".join(out.meta["header_warnings"])
    assert "pixdim[4] = nan" in notes
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_nifti_nonfinite_affine_names_the_header(tmp_path):
    f = tmp_path / "nanaff.nii"
    aff = np.eye(4)
    aff[0, 0] = np.nan
    img = nib.Nifti1Image(np.ones((2, 2, 2), np.uint8), None)
    img.header.set_sform(aff, code=1)
    img.header.set_qform(None, code=0)
    img.header["srow_x"] = [np.nan, 0, 0, 0]
    nib.save(img, f)
    with pytest.raises(MedsharedError, match=r"nanaff\.nii: the header's affine .* not finite"):
        read_nifti(f)
