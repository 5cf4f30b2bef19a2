"""medshared.io.checkpoint: safetensors + JSON metadata, atomic save, no unpickling, errors."""

from __future__ import annotations

import json
import struct

import pytest

from medshared.errors import MedsharedError, MissingExtraError
from medshared.io import METADATA_KEY, Checkpoint, load_checkpoint, save_checkpoint

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

META = {
    "package": "flowsr",
    "version": "0.1.0",
    "model_config": {"channels": [8, 16], "dropout": 0.1, "name": "unet"},
    "step": 1200,
    "seed": 0,
    "note": None,
}


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU())


def test_roundtrip_state_dict_and_metadata(tmp_path):
    model = _model()
    model(torch.randn(2, 1, 8, 8))  # updates BatchNorm running stats (num_batches_tracked int64)
    f = tmp_path / "model.safetensors"
    save_checkpoint(f, model.state_dict(), META)
    ck = load_checkpoint(f)
    assert isinstance(ck, Checkpoint) and ck.path == f
    assert ck.metadata == META
    ref = model.state_dict()
    assert sorted(ck.state_dict) == sorted(ref)
    for k, v in ref.items():
        assert ck.state_dict[k].dtype == v.dtype
        assert torch.equal(ck.state_dict[k], v)
    fresh = _model()
    torch.nn.init.zeros_(fresh[0].weight)
    fresh.load_state_dict(ck.state_dict)
    x = torch.randn(1, 1, 8, 8)
    model.eval(), fresh.eval()
    assert torch.equal(model(x), fresh(x))
    # the file is plain safetensors: readable by the reference loader, metadata as JSON text
    from safetensors import safe_open

    with safe_open(str(f), framework="pt") as fh:
        assert json.loads(fh.metadata()[METADATA_KEY]) == META


def test_tied_and_noncontiguous_tensors(tmp_path):
    w = torch.randn(4, 6)
    sd = {"enc.weight": w, "dec.weight": w, "view": w[:, :3], "t": w.t(), "half": w.half()}
    f = tmp_path / "tied.safetensors"
    save_checkpoint(f, sd, {})
    ck = load_checkpoint(f)
    for k, v in sd.items():
        assert torch.equal(ck.state_dict[k], v)
    assert ck.metadata == {}


def test_loading_never_unpickles(tmp_path, monkeypatch):
    import pickle

    f = tmp_path / "m.safetensors"
    save_checkpoint(f, {"a": torch.ones(2)}, {"step": 1})

    def forbidden(*a, **k):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    assert load_checkpoint(f).metadata == {"step": 1}


def test_non_json_metadata_leaves_nothing(tmp_path):
    f = tmp_path / "m.safetensors"
    bads = [
        {"obj": object()},
        {"t": torch.ones(1)},
        {"nan": float("nan")},
        {"s": {1, 2}},
        {"cfg": {"layers": [{1: "int key"}]}},
    ]
    for bad in bads:
        with pytest.raises(MedsharedError, match=r"m\.safetensors: metadata is not JSON"):
            save_checkpoint(f, {"a": torch.ones(2)}, bad)
    with pytest.raises(MedsharedError, match="must map str to torch.Tensor"):
        save_checkpoint(f, {"a": [1, 2]}, {})
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous(tmp_path, monkeypatch):
    f = tmp_path / "keep.safetensors"
    save_checkpoint(f, {"a": torch.zeros(3)}, {"step": 1})
    before = f.read_bytes()

    def half_write(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(before[:20])
        raise RuntimeError("disk full")

    monkeypatch.setattr(safetensors_torch, "save_file", half_write)
    with pytest.raises(MedsharedError, match="disk full"):
        save_checkpoint(f, {"a": torch.ones(3)}, {"step": 2})
    assert f.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.safetensors"]


def test_errors_missing_extension_corrupt(tmp_path):
    with pytest.raises(MedsharedError, match=r"x\.safetensors: no such file"):
        load_checkpoint(tmp_path / "x.safetensors")
    (tmp_path / "x.pt").write_bytes(b"")
    with pytest.raises(MedsharedError, match=r"x\.pt: wrong extension"):
        load_checkpoint(tmp_path / "x.pt")
    with pytest.raises(MedsharedError, match="wrong extension"):
        save_checkpoint(tmp_path / "x.pt", {"a": torch.ones(1)}, {})
    good = tmp_path / "good.safetensors"
    save_checkpoint(good, {"w": torch.randn(64, 64)}, META)
    raw = good.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(MedsharedError, match=r"cut\.safetensors: cannot read, file is corrupt"):
        load_checkpoint(cut)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(struct.pack("<Q", 40) + b"{not json at all" + b"\0" * 40)
    with pytest.raises(MedsharedError, match=r"junk\.safetensors: cannot read"):
        load_checkpoint(junk)


def test_plain_safetensors_without_metadata(tmp_path):
    f = tmp_path / "plain.safetensors"
    safetensors_torch.save_file({"a": torch.ones(2)}, str(f))
    with pytest.raises(MedsharedError, match="not written by medshared.io.save_checkpoint"):
        load_checkpoint(f)


def test_nonfinite(tmp_path):
    f = tmp_path / "n.safetensors"
    save_checkpoint(f, {"ok": torch.ones(2), "w": torch.tensor([1.0, float("inf")])}, {})
    assert torch.isinf(load_checkpoint(f).state_dict["w"][1])
    with pytest.raises(MedsharedError, match=r"n\.safetensors: tensor 'w' holds NaN/inf"):
        load_checkpoint(f, allow_nonfinite=False)


def test_missing_extra(tmp_path, monkeypatch):
    import medshared.io.checkpoint as mod

    def fail(module, extra, package="medshared"):
        raise MissingExtraError(f'pip install "{package}[{extra}]"')

    monkeypatch.setattr(mod, "require", fail)
    with pytest.raises(MissingExtraError, match=r"medshared\[torch\]"):
        load_checkpoint(tmp_path / "a.safetensors")


def test_bad_map_location(tmp_path):
    f = tmp_path / "m.safetensors"
    save_checkpoint(f, {"a": torch.ones(2)}, {})
    with pytest.raises(MedsharedError, match="bad map_location"):
        load_checkpoint(f, map_location="gpu7")
    if not torch.cuda.is_available():
        with pytest.raises(MedsharedError, match="CUDA is not available"):
            load_checkpoint(f, map_location="cuda")
    else:  # pragma: no cover - GPU machines
        assert load_checkpoint(f, map_location="cuda").state_dict["a"].is_cuda
