import pytest
import torch

from streamvq.bench import _anchor_model, format_bench, run_bench, summary
from streamvq.config import ModelConfig
from streamvq.models import build_model

SMALL = dict(hidden=16, residual_hidden=4, embedding_dim=8, codebook_size=16)


def _copy_into_anchor(ours, anchor):
    enc = list(ours.encoder.net)
    for a, o in zip(anchor.enc, enc[:-1], strict=True):
        a.load_state_dict(o.state_dict())
    anchor.pre.load_state_dict(enc[-1].state_dict())
    anchor.dec.load_state_dict(ours.decoder.state_dict())


@pytest.mark.parametrize("kind", ["ae", "vqvae"])
def test_anchor_reimplementation_matches_ours_where_it_should(kind):
    torch.manual_seed(0)
    cfg = ModelConfig(model=kind, **SMALL)
    ours, anchor = build_model(cfg).eval(), _anchor_model(kind, cfg).eval()
    _copy_into_anchor(ours, anchor)
    if kind == "vqvae":
        anchor.bott.emb.weight.data.copy_(ours.bottleneck.codebook.data)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(anchor(x)[1], ours(x).recon, atol=1e-5, rtol=1e-5)


def test_anchor_vqdiff_draws_noise_at_eval_ours_does_not():
    torch.manual_seed(0)
    cfg = ModelConfig(model="vqdiff", **SMALL)
    ours, anchor = build_model(cfg).eval(), _anchor_model("vqdiff", cfg).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.equal(anchor(x)[1], anchor(x)[1])
        assert torch.equal(ours(x).recon, ours(x).recon)


def test_run_bench_rows():
    rows = run_bench(batches=(2,), models=("ae",), repeats=1, threads=1, train_batches=(2,))
    assert [(r.phase, r.batch) for r in rows] == [("train", 2), ("infer", 2)]
    assert all(r.ours > 0 and r.anchor > 0 for r in rows)
    assert "ratio" in format_bench(rows) and set(summary(rows)) == {"train", "infer"}


@pytest.mark.slow
def test_quick_demo_returns_rows(tmp_path):
    from streamvq.demo import demo_rows

    rows = demo_rows(tmp_path, quick=True)
    assert {r.method for r in rows} == {"ae", "vae", "vqvae", "vqema", "vqdiff"}
    assert (tmp_path / "perturbation.png").is_file() and (tmp_path / "embedding.png").is_file()
    assert (tmp_path / "decoded_vqdiff.trk").is_file()
