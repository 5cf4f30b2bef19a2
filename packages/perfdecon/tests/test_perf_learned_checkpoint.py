"""Learned AIF: checkpoint round trip (exact outputs), error paths, predict_aif slab handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medshared.io import save_checkpoint
from perfdecon import __version__
from perfdecon.checkpoint import load_aif_model, restore_training_state, save_aif_model
from perfdecon.errors import PerfdeconError
from perfdecon.models import AIFNet
from perfdecon.predict import fit_slices, predict_aif, slab_starts

N_T = 16


def _net(seed=0, **kw):
    torch.manual_seed(seed)
    return AIFNet(N_T, 2, channels_3d=(4,), channels_2d=(6,), **kw)


def test_checkpoint_round_trip_reproduces_outputs_exactly(tmp_path):
    net = _net(dropout=0.2, non_negative=True).eval()
    x = torch.randn(2, N_T, 2, 12, 10)
    path = tmp_path / "aif.safetensors"
    save_aif_model(path, net, {"lr": 0.01}, step=17, seed=5)
    model, meta = load_aif_model(path)
    assert not model.training
    assert model.config == net.config
    assert torch.equal(model(x), net(x))
    assert meta["package"] == "perfdecon" and meta["version"] == __version__
    assert meta["step"] == 17 and meta["seed"] == 5 and meta["train_config"] == {"lr": 0.01}
    assert meta["model_config"]["non_negative"] is True
    assert not list(tmp_path.glob("*.part*"))


def test_optimizer_and_rng_state_round_trip(tmp_path):
    net = _net(dropout=0.0)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    x = torch.randn(1, N_T, 2, 8, 8)
    for _ in range(2):
        opt.zero_grad()
        net(x).pow(2).sum().backward()
        opt.step()
    torch.manual_seed(123)
    path = tmp_path / "run.safetensors"
    save_aif_model(path, net, None, step=2, seed=0, optimizer=opt, extra={"epoch": 1})
    expected_draw = torch.rand(3)

    net2 = _net(seed=9, dropout=0.0)
    opt2 = torch.optim.SGD(net2.parameters(), lr=0.05, momentum=0.9)
    torch.manual_seed(999)
    meta = restore_training_state(path, net2, opt2)
    assert meta["epoch"] == 1
    assert torch.equal(torch.rand(3), expected_draw)
    for a, b in zip(net.parameters(), net2.parameters()):
        assert torch.equal(a, b)
    # One more identical step from both gives identical weights (momentum restored).
    for n, o in ((net, opt), (net2, opt2)):
        o.zero_grad()
        n(x).pow(2).sum().backward()
        o.step()
    for a, b in zip(net.parameters(), net2.parameters()):
        assert torch.equal(a, b)


def test_checkpoint_error_paths(tmp_path):
    with pytest.raises(PerfdeconError, match="no such file"):
        load_aif_model(tmp_path / "none.safetensors")
    other = tmp_path / "other.safetensors"
    save_checkpoint(other, {"w": torch.zeros(2)}, {"package": "flowsr", "model": "X"})
    with pytest.raises(PerfdeconError, match="not a perfdecon AIFNet"):
        load_aif_model(other)
    bad = tmp_path / "bad.safetensors"
    meta = {"package": "perfdecon", "model": "AIFNet", "model_config": _net().config.to_dict()}
    save_checkpoint(bad, {"model.fc.weight": torch.zeros(3, 3)}, meta)
    with pytest.raises(PerfdeconError, match="do not match"):
        load_aif_model(bad)
    good = tmp_path / "good.safetensors"
    save_aif_model(good, _net(), None, 0, 0)
    with pytest.raises(PerfdeconError, match="no optimizer state"):
        net = _net()
        restore_training_state(good, net, torch.optim.SGD(net.parameters(), lr=0.1))
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(good.read_bytes()[:100])
    with pytest.raises(PerfdeconError, match="trunc"):
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


def test_predict_aif_from_checkpoint(tmp_path):
    net = _net(seed=2, non_negative=True).eval()
    path = tmp_path / "aif.safetensors"
    save_aif_model(path, net, None, 0, 0)
    rng = np.random.default_rng(0)
    ctc = rng.gamma(2.0, 3.0, size=(2, 10, 9, N_T)).astype(np.float32)
    raw = predict_aif(path, ctc, rescale="none")
    with torch.no_grad():
        direct = net(
            torch.from_numpy(
                np.moveaxis(ctc, -1, 0)[None] / np.float32(np.percentile(ctc.max(-1), 99))
            )
        )[0]
    scale = float(np.percentile(ctc.max(-1), 99))
    np.testing.assert_allclose(raw, direct.double().numpy() * scale, rtol=1e-5)
    aif = predict_aif(net, ctc)
    assert aif.shape == (N_T,) and aif.dtype == np.float64
    assert aif.max() == pytest.approx(np.percentile(ctc.max(-1), 99.9), rel=1e-6)
    np.testing.assert_allclose(aif / aif.max(), raw / raw.max(), rtol=1e-6)
    # A thicker series is cut into slabs of n_slices, each normalised by the whole series'
    # scale, and the slabs' AIFs are averaged.
    thick = np.concatenate([ctc, ctc[:, ::-1], ctc[:1] * 2])  # 5 slices -> slabs 0-1, 2-3, 3-4
    s5 = float(np.percentile(thick.max(-1), 99))
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
