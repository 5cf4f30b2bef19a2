"""DICOM in and out (issue 12): attributes kept in the .wdr, a valid series written back."""

from __future__ import annotations

import numpy as np
import pytest

from medshared.metrics import psnr
from wdrcodec.cli import main

pydicom = pytest.importorskip("pydicom")


def _write_series(folder, vol, *, signed=False, **extra):
    """One file per slice (Z, Y, X), slices 3 mm apart along +z, shuffled file names."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder.mkdir()
    uids = []
    for z in range(vol.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        name = folder / f"f{(7 * z) % vol.shape[0]:02d}.dcm"
        ds = FileDataset(str(name), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        uids.append(ds.SOPInstanceUID)
        ds.Modality = "MR"
        ds.PatientName = "Test^Phantom"
        ds.SeriesInstanceUID = "1.2.3.4"
        ds.StudyInstanceUID = "1.2.3"
        ds.InstanceNumber = z + 1
        ds.ImagePositionPatient = [0.0, 0.0, 3.0 * z]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [0.7, 0.6]
        ds.SliceThickness = 3.0
        ds.Rows, ds.Columns = vol.shape[1:]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.PixelRepresentation = 1 if signed else 0
        ds.PixelData = vol[z].tobytes()
        for keyword, value in extra.items():
            setattr(ds, keyword, value)
        ds.save_as(str(name), enforce_file_format=True)
    return uids


def _read_sorted(folder):
    """A reader that sorts by position along the slice normal, as any viewer does."""
    files = [pydicom.dcmread(str(p)) for p in sorted(folder.iterdir())]
    normal = np.cross(*np.reshape(files[0].ImageOrientationPatient, (2, 3)))
    files.sort(key=lambda d: float(np.dot(normal, d.ImagePositionPatient)))
    return files, np.stack([d.pixel_array for d in files])


@pytest.fixture()
def series(tmp_path, smooth_volume):
    vol = (smooth_volume[:5] % 4096).astype(np.uint16)
    uids = _write_series(tmp_path / "in", vol)
    return tmp_path / "in", vol, uids


def test_lossless_round_trip_keeps_attributes_and_uids(tmp_path, series, capsys):
    folder, vol, uids = series
    wdr = tmp_path / "s.wdr"
    assert main(["encode", str(folder), str(wdr), "--lossless"]) == 0
    assert "DICOM attributes kept" in capsys.readouterr().out
    out = tmp_path / "out"
    assert main(["decode", str(wdr), str(out), "--format", "dicom"]) == 0
    files, back = _read_sorted(out)
    np.testing.assert_array_equal(back, vol)
    assert [d.SOPInstanceUID for d in files] == uids  # bit-exact: the same instances
    d = files[2]
    assert d.PatientName == "Test^Phantom" and d.SeriesInstanceUID == "1.2.3.4"
    assert d.BitsStored == 12 and d.Rows == vol.shape[1] and d.Columns == vol.shape[2]
    assert "LossyImageCompression" not in d and d.file_meta.TransferSyntaxUID.is_little_endian


def test_lossy_decode_is_a_new_derived_series(tmp_path, series):
    folder, vol, uids = series
    wdr = tmp_path / "s.wdr"
    assert main(["encode", str(folder), str(wdr), "--bpv", "3", "--quiet"]) == 0
    out = tmp_path / "out"
    assert main(["decode", str(wdr), str(out), "--format", "dicom", "--quiet"]) == 0
    files, back = _read_sorted(out)
    assert back.shape == vol.shape and psnr(vol, back, data_range="ref") > 30
    assert not {d.SOPInstanceUID for d in files} & set(uids)
    assert len({d.SeriesInstanceUID for d in files}) == 1
    assert files[0].SeriesInstanceUID != "1.2.3.4" and files[0].StudyInstanceUID == "1.2.3"
    for d in files:
        assert d.LossyImageCompression == "01" and d.ImageType[0] == "DERIVED"
        assert d.LossyImageCompressionMethod == "WDR_3D"
        assert float(d.LossyImageCompressionRatio) == pytest.approx(16 / 3, rel=0.05)
        assert d.DerivationCodeSequence[0].CodeValue == "113040"
        src = d.SourceImageSequence[0]
        assert src.ReferencedSOPClassUID == d.SOPClassUID
        assert src.PurposeOfReferenceCodeSequence[0].CodeValue == "121320"
    # each derived slice references the original instance at its own position
    assert [d.SourceImageSequence[0].ReferencedSOPInstanceUID for d in files] == uids


def test_lossy_decode_of_a_lossy_source_extends_its_history(tmp_path, smooth_volume):
    """PS3.3 C.7.6.1.1.5: once 01, always 01; one ratio and one method per lossy step."""
    vol = (smooth_volume[:4] % 4096).astype(np.uint16)
    folder = tmp_path / "in"
    _write_series(
        folder,
        vol,
        LossyImageCompression="01",
        LossyImageCompressionRatio="2.5",
        LossyImageCompressionMethod="ISO_10918_1",
    )
    wdr = tmp_path / "s.wdr"
    assert main(["encode", str(folder), str(wdr), "--lossless"]) == 0
    exact = tmp_path / "exact"
    assert main(["decode", str(wdr), str(exact), "--format", "dicom", "--quiet"]) == 0
    d = _read_sorted(exact)[0][0]
    assert d.LossyImageCompressionRatio == 2.5 and d.LossyImageCompressionMethod == "ISO_10918_1"
    out = tmp_path / "out"
    assert main(["decode", str(wdr), str(out), "--format", "dicom", "--bpv", "3", "--quiet"]) == 0
    for d in _read_sorted(out)[0]:
        assert d.LossyImageCompression == "01"
        assert list(d.LossyImageCompressionMethod) == ["ISO_10918_1", "WDR_3D"]
        assert float(d.LossyImageCompressionRatio[0]) == 2.5
        assert float(d.LossyImageCompressionRatio[1]) > 1
        code = d.SourceImageSequence[0].PurposeOfReferenceCodeSequence[0].CodeValue
        assert code == "121322"  # the source is not an uncompressed predecessor


def test_dicom_output_needs_dicom_attributes(tmp_path, smooth_volume, capsys):
    src = tmp_path / "v.npy"
    np.save(src, smooth_volume)
    assert main(["encode", str(src), str(tmp_path / "v.wdr"), "--bpv", "2", "--quiet"]) == 0
    assert main(["decode", str(tmp_path / "v.wdr"), str(tmp_path / "o"), "--format", "dicom"]) == 2
    err = capsys.readouterr().err
    assert "keeps no DICOM attributes" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
