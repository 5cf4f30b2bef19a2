import warnings

import numpy as np
import pytest

from medshared.io import read_png, write_png
from usenhance.data import find_pairs, list_images, load_images, pad_to_multiple, split_pairs
from usenhance.errors import UsenhanceError
from usenhance.imageio import read_image, write_image


def _dataset(root, organs=("liver", "kidney"), n=10, size=(20, 24)):
    rng = np.random.default_rng(0)
    for o in organs:
        for sub in ("low_quality", "high_quality"):
            (root / o / sub).mkdir(parents=True)
            for i in range(n):
                write_png(root / o / sub / f"{i:03d}.png", rng.integers(0, 255, size, dtype=np.uint8))
    return root


def test_pairs_matched_by_name_and_unmatched_reported(tmp_path):
    root = _dataset(tmp_path / "d")
    write_png(root / "liver" / "low_quality" / "extra.png", np.zeros((4, 4), np.uint8))
    with pytest.warns(UserWarning, match="1 file.*without a partner.*extra.png"):
        pairs = find_pairs(root)
    assert len(pairs) == 20
    assert all(p.low.name == p.high.name for p in pairs)
    assert {p.organ for p in pairs} == {"liver", "kidney"}


def test_split_is_seeded_stratified_and_disjoint(tmp_path):
    pairs = find_pairs(_dataset(tmp_path / "d"))
    s1, s2, s3 = split_pairs(pairs, seed=1), split_pairs(pairs, seed=1), split_pairs(pairs, seed=2)
    assert s1 == s2 and s1 != s3
    for organ in ("liver", "kidney"):
        assert [len([p for p in part if p.organ == organ]) for part in (s1.train, s1.val, s1.test)] == [7, 1, 2]
    names = [(p.organ, p.name) for p in s1.train + s1.val + s1.test]
    assert len(set(names)) == 20
    with pytest.raises(UsenhanceError, match="summing to 1"):
        split_pairs(pairs, (0.5, 0.1, 0.1))


def test_corrupt_files_are_skipped_with_a_count(tmp_path):
    root = _dataset(tmp_path / "d", organs=("liver",), n=3)
    (root / "liver" / "low_quality" / "001.png").write_bytes(b"not a png at all")
    pairs = find_pairs(root)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        lows, highs = load_images(pairs)
    text = " | ".join(str(w.message) for w in got)
    assert len(lows) == 2 and "001.png" in text and "1 unreadable pair file(s) skipped" in text


def test_png_bit_depth_round_trip(tmp_path):
    for dtype, depth in ((np.uint8, 8), (np.uint16, 16)):
        arr = np.arange(12 * 10, dtype=dtype).reshape(12, 10) * (3 if depth == 8 else 500)
        p = tmp_path / f"a{depth}.png"
        write_png(p, arr)
        img = read_image(p)
        assert img.bit_depth == depth and img.frames.shape == (1, 12, 10)
        out = tmp_path / f"b{depth}.png"
        write_image(out, img.frames, img)
        back = read_png(out)
        assert back.dtype == dtype
        np.testing.assert_array_equal(back, arr)


def test_non_images_refused_by_name(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello")
    with pytest.raises(UsenhanceError, match="notes.txt"):
        read_image(p)
    (tmp_path / "sub").mkdir()
    with pytest.raises(UsenhanceError, match="no PNG or DICOM"):
        list_images(tmp_path / "sub")


def test_pad_to_multiple_reflects_and_crops_back():
    img = np.random.default_rng(0).random((37, 50))
    p = pad_to_multiple(img, 16)
    assert p.image.shape == (48, 64)
    np.testing.assert_array_equal(p.image[p.crop], img)
    np.testing.assert_array_equal(p.image[37, :50], img[35])  # reflect (not edge) padding


def test_unpaired_layout_trains_cyclegan_only(tmp_path):
    from dataclasses import replace

    from usenhance.config import NetConfig, TrainConfig
    from usenhance.train import load_training_data

    rng = np.random.default_rng(0)
    for sub, n in (("trainA", 3), ("trainB", 5)):
        (tmp_path / sub).mkdir()
        for i in range(n):
            write_png(tmp_path / sub / f"{i}.png", rng.integers(0, 255, (40, 36), dtype=np.uint8))
    (tmp_path / "trainB" / "broken.png").write_bytes(b"\x89PNG broken")
    cfg = TrainConfig(model="cyclegan", crop=32, net=NetConfig(ngf=4, num_downs=3))
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        td = load_training_data(tmp_path, cfg)
    text = " | ".join(str(w.message) for w in got)
    assert "broken.png" in text and "1 unreadable training file(s) skipped" in text
    assert not td.paired and len(td.lows) == 3 and len(td.highs) == 5
    with pytest.raises(UsenhanceError, match="only train --model cyclegan"):
        load_training_data(tmp_path, replace(cfg, model="pix2pix"))
    from usenhance.datasets import CropDataset

    item = CropDataset(td.lows, td.highs, 32, paired=False)[1]
    assert item["low"].shape == (1, 32, 32) and -1 <= item["high"].min() <= item["high"].max() <= 1
