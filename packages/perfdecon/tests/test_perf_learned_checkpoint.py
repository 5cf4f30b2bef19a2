"""Learned AIF: model export round trip (exact outputs), error paths, predict_aif slabs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medshared.errors import MedsharedError
from medshared.io import save_checkpoint
from medshared.training import export_model
from perfdecon import __version__
from perfdecon.errors import PerfdeconError
from perfdecon.models import AIFNet
from perfdecon.predict import fit_slices, load_aif_model, predict_aif, slab_starts

N_T = 16


def _net(seed=0, **kw):
    torch.manual_seed(seed)
    return AIFNet(N_T, 2, channels_3d=(4,), channels_2d=(6,), **kw)


def save_aif_model(path, net, **extra):
    export_model(path, net, package="perfdecon", version=__version__, kind="AIFNet",
                 model_config=net.config.to_dict(), extra=extra)


@pytest.mark.parametrize("non_negative", [True, False])
def test_export_round_trip_reproduces_outputs_exactly(tmp_path, non_negative):
    # the paper's linear-output model and the softplus one load the same way
    net = _net(dropout=0.2, non_negative=non_negative).eval()
    x = torch.randn(2, N_T, 2, 12, 10)
    path = tmp_path / "aif.safetensors"
    save_aif_model(path, net, step=17, seed=5)
    model, meta = load_aif_model(path)
    assert not model.training
    assert model.config == net.config
    assert torch.equal(model(x), net(x))
    assert meta["package"] == "perfdecon" and meta["version"] == __version__
    assert meta["step"] == 17 and meta["seed"] == 5 and meta["kind"] == "AIFNet"
    assert meta["model_config"]["non_negative"] is non_negative
    assert not list(tmp_path.glob("*.part*"))


def test_legacy_single_file_checkpoint_loads(tmp_path):
    net = _net(seed=3).eval()
    path = tmp_path / "checkpoint.safetensors"
    tensors = {f"model.{k}": v for k, v in net.state_dict().items()}
    tensors["optimizer.0.momentum_buffer"] = torch.zeros(3)
    save_checkpoint(path, tensors, {"package": "perfdecon", "model": "AIFNet",
                                    "model_config": net.config.to_dict()})
    model, _ = load_aif_model(path)
    x = torch.randn(1, N_T, 2, 8, 8)
    assert torch.equal(model(x), net(x))


def test_export_error_paths(tmp_path):
    with pytest.raises(MedsharedError, match="none.safetensors"):
        load_aif_model(tmp_path / "none.safetensors")
    other = tmp_path / "other.safetensors"
    export_model(other, torch.nn.Linear(2, 2), package="flowsr", version="0", kind="X",
                 model_config={})
    with pytest.raises(MedsharedError, match="flowsr"):
        load_aif_model(other)
    kind = tmp_path / "kind.safetensors"
    export_model(kind, torch.nn.Linear(2, 2), package="perfdecon", version="0", kind="Other",
                 model_config={})
    with pytest.raises(MedsharedError, match="AIFNet"):
        load_aif_model(kind)
    plain = tmp_path / "plain.safetensors"
    save_checkpoint(plain, {"w": torch.zeros(2)}, {"package": "flowsr", "model": "X"})
    with pytest.raises(PerfdeconError, match="not a perfdecon AIFNet"):
        load_aif_model(plain)
    bad = tmp_path / "bad.safetensors"
    export_model(bad, torch.nn.Linear(3, 3), package="perfdecon", version="0", kind="AIFNet",
                 model_config=_net().config.to_dict())
    with pytest.raises(PerfdeconError, match="do not match"):
        load_aif_model(bad)
    good = tmp_path / "good.safetensors"
    save_aif_model(good, _net())
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(good.read_bytes()[:100])
    with pytest.raises(MedsharedError, match="trunc"):
        load_aif_model(trunc)


def test_slab_handling():
    assert slab_starts(4, 4) == [0]
    assert slab_starts(8, 4) == [0, 4]
    assert slab_starts(10, 4) == [0, 4, 6]
    assert slab_starts(2, 4) == [0]
    ctc = np.arange(3 * 2 * 2 * 5, dtype=np.float32).reshape(3, 2, 2, 5)
    (padded,) = fit_slices(ctc, 6)
    assert padded.shape == (6, 2, 2, 5)
    np.testing.assert_array_equal(padded[[0, 1, 2, 3, 4, 5]], ctc[[0, 0, 1, 2, 2, 2]])
    slabs = fit_slices(ctc, 2)
    assert [s.shape[0] for s in slabs] == [2, 2]
    np.testing.assert_array_equal(slabs[1], ctc[1:3])


def test_predict_aif_from_export(tmp_path):
    net = _net(seed=2, non_negative=True).eval()
    path = tmp_path / "aif.safetensors"
    save_aif_model(path, net)
    rng = np.random.default_rng(0)
    ctc = rng.gamma(2.0, 3.0, size=(2, 10, 9, N_T)).astype(np.float32)
    raw = predict_aif(path, ctc, rescale="none")
    pct = net.config.input_percentile  # the model's own input normalisation (50 = median)
    assert pct == 50.0
    with torch.no_grad():
        direct = net(
            torch.from_numpy(
                np.moveaxis(ctc, -1, 0)[None] / np.float32(np.percentile(ctc.max(-1), pct))
            )
        )[0]
    scale = float(np.percentile(ctc.max(-1), pct))
    np.testing.assert_allclose(raw, direct.double().numpy() * scale, rtol=1e-5)
    aif = predict_aif(net, ctc)
    assert aif.shape == (N_T,) and aif.dtype == np.float64
    assert aif.max() == pytest.approx(np.percentile(ctc.max(-1), 99.9), rel=1e-6)
    np.testing.assert_allclose(aif / aif.max(), raw / raw.max(), rtol=1e-6)
    # A thicker series is cut into slabs of n_slices, each normalised by the whole series'
    # scale, and the slabs' AIFs are averaged.
    thick = np.concatenate([ctc, ctc[:, ::-1], ctc[:1] * 2])  # 5 slices -> slabs 0-1, 2-3, 3-4
    s5 = float(np.percentile(thick.max(-1), pct))
    with torch.no_grad():
        expected = np.mean(
            [
                net(torch.from_numpy(np.moveaxis(thick[a : a + 2], -1, 0)[None] / np.float32(s5)))[
                    0
                ]
                .double()
                .numpy()
                for a in (0, 2, 3)
            ],
            axis=0,
        )
    np.testing.assert_allclose(predict_aif(net, thick, rescale="none"), expected * s5, rtol=1e-5)

    # Frame count differs from the model's: crop/pad ("fit") or refuse ("strict").
    from perfdecon.datasets import fit_frames

    short = predict_aif(net, ctc[..., :-3], rescale="none")
    assert short.shape == (N_T - 3,)
    padded = predict_aif(net, fit_frames(ctc[..., :-3], N_T), rescale="none")
    np.testing.assert_allclose(short, padded[: N_T - 3], rtol=1e-6)
    long = predict_aif(net, fit_frames(ctc, N_T + 4), rescale="none")
    assert long.shape == (N_T + 4,)
    np.testing.assert_allclose(long[:N_T], raw, rtol=1e-5)
    np.testing.assert_array_equal(long[N_T:], long[N_T - 1])
    with pytest.raises(PerfdeconError, match="frames"):
        predict_aif(net, ctc[..., :-1], frames="strict")
    with pytest.raises(PerfdeconError, match="frames"):
        predict_aif(net, ctc, frames="bogus")
    with pytest.raises(PerfdeconError, match="Z, Y, X, T"):
        predict_aif(net, ctc[0])
    with pytest.raises(PerfdeconError, match="brain mask"):
        predict_aif(net, ctc, brain_mask=np.ones((2, 10, 8), bool))
    nan = ctc.copy()
    nan[0, 0, 0, 0] = np.nan
    with pytest.raises(PerfdeconError, match="NaN"):
        predict_aif(net, nan)
    with pytest.raises(PerfdeconError, match="rescale"):
        predict_aif(net, ctc, rescale="bogus")
    neg = _net(seed=2).eval()
    with torch.no_grad():
        neg.fc.bias.fill_(-100.0)
    with pytest.raises(PerfdeconError, match="non-positive area.*--non-negative"):
        predict_aif(neg, ctc, rescale="none")
    assert (predict_aif(neg, ctc, rescale="none", allow_nonpositive_area=True) < 0).all()
    with pytest.raises(PerfdeconError, match="positive peak"):
        predict_aif(neg, ctc, allow_nonpositive_area=True)
