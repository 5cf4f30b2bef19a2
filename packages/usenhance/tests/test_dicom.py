import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402

from usenhance.imageio import read_image, write_image  # noqa: E402

US_SOP = "1.2.840.10008.5.1.4.1.1.6.1"


def _ds(pixels: np.ndarray, pi: str, frames: int = 1, bits: int = 8) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = US_SOP
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = US_SOP, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.PhotometricInterpretation = pi
    spp = 3 if pixels.shape[-1] == 3 and pi not in ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR") else 1
    ds.SamplesPerPixel = spp
    if spp == 3:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = pixels.shape[-3 if spp == 3 else -2], pixels.shape[-2 if spp == 3 else -1]
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = pixels.astype(np.uint8 if bits == 8 else np.uint16).tobytes()
    return ds


def _save(ds, path):
    ds.save_as(path, enforce_file_format=True)
    return path


def test_monochrome2_and_monochrome1(tmp_path):
    g = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    a = read_image(_save(_ds(g, "MONOCHROME2"), tmp_path / "a.dcm"))
    b = read_image(_save(_ds(g, "MONOCHROME1"), tmp_path / "b.dcm"))
    np.testing.assert_allclose(a.frames[0], g / 255, atol=1e-6)
    np.testing.assert_allclose(b.frames[0], 1 - g / 255, atol=1e-6)
    assert a.bit_depth == 8 and a.kind == "dicom"


def test_rgb_and_ybr_become_gray_with_a_warning(tmp_path):
    rgb = np.zeros((6, 6, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    with pytest.warns(UserWarning, match="RGB colour image converted to grayscale"):
        img = read_image(_save(_ds(rgb, "RGB"), tmp_path / "rgb.dcm"))
    luma = (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255
    np.testing.assert_allclose(img.frames[0], luma, atol=1e-6)
    # YBR_FULL of a gray value v has Y = v, Cb = Cr = 128
    ybr = np.zeros((6, 6, 3), np.uint8)
    ybr[..., 0], ybr[..., 1], ybr[..., 2] = 90, 128, 128
    with pytest.warns(UserWarning, match="YBR_FULL colour image converted"):
        img = read_image(_save(_ds(ybr, "YBR_FULL"), tmp_path / "ybr.dcm"))
    np.testing.assert_allclose(img.frames[0], 90 / 255, atol=2 / 255)


def test_palette_color(tmp_path):
    idx = np.array([[0, 1], [2, 3]], np.uint8)
    ds = _ds(idx, "PALETTE COLOR")
    lut = np.array([0, 85, 170, 255], np.uint16) * 257
    for c in ("Red", "Green", "Blue"):
        setattr(ds, f"{c}PaletteColorLookupTableDescriptor", [4, 0, 16])
        setattr(ds, f"{c}PaletteColorLookupTableData", lut.tobytes())
    with pytest.warns(UserWarning, match="PALETTE COLOR"):
        img = read_image(_save(ds, tmp_path / "pal.dcm"))
    np.testing.assert_allclose(img.frames[0].ravel(), [0, 1 / 3, 2 / 3, 1], atol=1e-3)


def test_multiframe_round_trip_is_a_derived_monochrome_dicom(tmp_path):
    frames = np.stack([np.full((5, 7), v, np.uint8) for v in (10, 120, 250)])
    src = read_image(_save(_ds(frames, "MONOCHROME2", frames=3), tmp_path / "cine.dcm"))
    assert src.frames.shape == (3, 5, 7)
    out = write_image(tmp_path / "out.dcm", src.frames[:, :, ::-1], src)
    ds = pydicom.dcmread(out)
    assert ds.PhotometricInterpretation == "MONOCHROME2" and int(ds.NumberOfFrames) == 3
    assert ds.SOPInstanceUID != src.dataset.SOPInstanceUID
    np.testing.assert_array_equal(ds.pixel_array, frames)
    back = read_image(out)
    np.testing.assert_allclose(back.frames, src.frames, atol=1e-6)


def test_corrupt_dicom_is_named(tmp_path):
    p = tmp_path / "bad.dcm"
    p.write_bytes(b"\0" * 128 + b"DICM" + b"garbage" * 3)
    from usenhance.errors import UsenhanceError

    with pytest.raises(UsenhanceError, match="bad.dcm"):
        read_image(p)


def test_enhance_a_dicom_cine_and_a_png_folder_via_cli(tmp_path, capsys):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from _tiny import tiny_config, tiny_data

    from usenhance.cli import main
    from usenhance.train import train

    res = train(tiny_data(), tmp_path / "run", tiny_config("pix2pix", epochs=1), device="cpu",
                quiet=True)
    frames = (np.random.default_rng(0).random((2, 30, 43)) * 255).astype(np.uint8)
    src = _save(_ds(frames, "MONOCHROME2", frames=2), tmp_path / "cine.dcm")
    out = tmp_path / "cine_enh.dcm"
    assert main(["enhance", str(src), str(out), "--ckpt", str(res.export), "--quiet"]) == 0
    ds = pydicom.dcmread(out)
    assert ds.pixel_array.shape == (2, 30, 43) and "usenhance" in ds.SeriesDescription
    # refusing to overwrite the input, before any work
    assert main(["enhance", str(src), str(src), "--ckpt", str(res.export), "--quiet"]) == 2
    assert "same file" in capsys.readouterr().err
    assert pydicom.dcmread(src).SOPInstanceUID != ds.SOPInstanceUID


def test_ybr_full_422_uncompressed(tmp_path):
    rows, cols = 4, 6
    ds = _ds(np.zeros((rows, cols, 3), np.uint8), "YBR_FULL_422")
    # 4:2:2 subsampled layout: Y0 Y1 Cb Cr for every two pixels of a row
    quads = np.tile(np.array([60, 200, 128, 128], np.uint8), rows * cols // 2)
    ds.PixelData = quads.tobytes()
    with pytest.warns(UserWarning, match="YBR_FULL_422"):
        img = read_image(_save(ds, tmp_path / "y422.dcm"))
    want = np.tile([60, 200], (rows, cols // 2)) / 255
    np.testing.assert_allclose(img.frames[0], want, atol=2 / 255)
