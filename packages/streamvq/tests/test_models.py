import pytest
import torch

from streamvq.config import MODEL_NAMES, ModelConfig
from streamvq.errors import StreamvqError
from streamvq.models import (
    GaussianBottleneck,
    GumbelSoftQuantizer,
    VectorQuantizer,
    VectorQuantizerEMA,
    build_model,
)
from streamvq.models.bottlenecks import perplexity, sq_distances

SMALL = dict(hidden=16, residual_hidden=4, embedding_dim=8, codebook_size=16)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_shapes_and_finite_losses(name):
    torch.manual_seed(0)
    net = build_model(ModelConfig(model=name, **SMALL))
    x = torch.randn(2, 3, 64, 64)
    out = net(x)
    assert out.recon.shape == x.shape
    assert out.latent.shape == (2, 8, 16, 16) == (2, *net.latent_shape)
    assert torch.isfinite(out.loss)
    assert (out.usage is None) == (name in ("ae", "vae"))
    torch.testing.assert_close(net.decode(out.latent), out.recon)


def test_unknown_model_is_an_error():
    with pytest.raises(StreamvqError, match="unknown model"):
        build_model(ModelConfig(model="pca"))  # type: ignore[arg-type]


def test_sq_distances_matches_cdist():
    a, b = torch.randn(50, 7, dtype=torch.float64), torch.randn(9, 7, dtype=torch.float64)
    torch.testing.assert_close(sq_distances(a, b), torch.cdist(a, b) ** 2)


def test_perplexity_known_assignments():
    assert float(perplexity(torch.tensor([2.0, 2.0, 0.0, 0.0]))) == pytest.approx(2.0)
    assert float(perplexity(torch.ones(16))) == pytest.approx(16.0)
    assert float(perplexity(torch.tensor([5.0, 0.0, 0.0]))) == pytest.approx(1.0)


def test_vq_picks_nearest_and_straight_through_reaches_encoder():
    torch.manual_seed(0)
    net = build_model(ModelConfig(model="vqvae", **SMALL))
    x = torch.randn(2, 3, 64, 64)
    out = net(x)
    # the chosen code is the nearest one (brute force)
    z = net.encoder(x).permute(0, 2, 3, 1).reshape(-1, 8)
    nearest = torch.cdist(z, net.bottleneck.codebook).argmin(1)
    assert torch.equal(out.indices.reshape(-1), nearest)
    ((out.recon - x) ** 2).mean().backward()  # reconstruction only
    first = net.encoder.net[0].weight.grad
    assert first is not None and first.abs().sum() > 0
    assert net.bottleneck.codebook.grad is None or net.bottleneck.codebook.grad.abs().sum() == 0


def test_vq_codebook_and_commitment_loss():
    vq = VectorQuantizer(4, 2, commitment=0.25)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]))
    z = torch.tensor([[[[1.0, 9.0]], [[0.0, 1.0]]]])  # (1, D=2, H=1, W=2): vectors (1,0), (9,1)
    out = vq(z)
    assert out.indices.reshape(-1).tolist() == [0, 1]
    mse = ((1.0**2) + (1.0**2 + 1.0**2)) / 4  # mean over 4 elements
    assert float(out.loss.detach()) == pytest.approx(1.25 * mse)
    torch.testing.assert_close(out.quantized, torch.tensor([[[[0.0, 10.0]], [[0.0, 0.0]]]]))


def test_ema_update_moves_codes_to_assigned_means():
    torch.manual_seed(0)
    ema = VectorQuantizerEMA(3, 2, decay=0.0, epsilon=1e-12)
    with torch.no_grad():
        ema.codebook.copy_(torch.tensor([[0.0, 0.0], [5.0, 5.0], [100.0, 100.0]]))
    pts = torch.tensor([[0.5, 0.1], [-0.3, 0.3], [4.0, 6.0], [6.5, 5.5]])
    z = pts.t().reshape(1, 2, 1, 4)
    ema.train()
    out = ema(z)
    assert out.indices.reshape(-1).tolist() == [0, 0, 1, 1]
    torch.testing.assert_close(ema.codebook[0], pts[:2].mean(0), atol=1e-5, rtol=0)
    torch.testing.assert_close(ema.codebook[1], pts[2:].mean(0), atol=1e-5, rtol=0)
    before = ema.codebook.clone()
    ema.eval()
    ema(z * 3)
    torch.testing.assert_close(ema.codebook, before)  # no update in evaluation


def test_ema_decay_blends_old_and_new():
    ema = VectorQuantizerEMA(1, 1, decay=0.5, epsilon=0.0)
    with torch.no_grad():
        ema.codebook.fill_(2.0)
        ema.ema_sum.fill_(2.0)
        ema.cluster_size.fill_(1.0)
    ema.train()
    ema(torch.full((1, 1, 1, 2), 4.0))  # two vectors of value 4
    # N = 0.5*1 + 0.5*2 = 1.5 ; m = 0.5*2 + 0.5*8 = 5 ; e = 5/1.5
    assert float(ema.codebook) == pytest.approx(5 / 1.5)


def test_vqdiff_deterministic_eval_is_softmax_of_negative_distances():
    torch.manual_seed(0)
    q = GumbelSoftQuantizer(10, 4, temperature=10.0, std=2.0)
    assert float(q.codebook.detach().std()) == pytest.approx(2.0, rel=0.35)
    z = torch.randn(2, 4, 3, 3)
    q.eval()
    a, b = q(z), q(z)
    torch.testing.assert_close(a.quantized, b.quantized)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 4)
    w = torch.softmax(-torch.cdist(flat, q.codebook) ** 2 / 10.0, dim=1)
    ref = (w @ q.codebook).reshape(2, 3, 3, 4).permute(0, 3, 1, 2)
    torch.testing.assert_close(a.quantized, ref, atol=1e-5, rtol=1e-5)
    q.stochastic = True
    assert not torch.allclose(q(z).quantized, a.quantized)


def test_vqdiff_codebook_is_trained_by_backprop():
    torch.manual_seed(0)
    net = build_model(ModelConfig(model="vqdiff", **SMALL))
    x = torch.randn(2, 3, 64, 64)
    out = net(x)
    ((out.recon - x) ** 2).mean().backward()
    assert net.bottleneck.codebook.grad.abs().sum() > 0
    assert net.encoder.net[0].weight.grad.abs().sum() > 0


def test_model_eval_is_reproducible_for_every_model():
    for name in MODEL_NAMES:
        torch.manual_seed(1)
        net = build_model(ModelConfig(model=name, **SMALL)).eval()
        x = torch.randn(1, 3, 64, 64)
        with torch.no_grad():
            torch.testing.assert_close(net(x).recon, net(x).recon)


def test_kl_formula_matches_torch_distributions():
    from torch.distributions import Normal, kl_divergence

    mu, logvar = torch.randn(5, 20), torch.randn(5, 20)
    ours = GaussianBottleneck.kl_divergence(mu, logvar)
    ref = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(1).mean()
    torch.testing.assert_close(ours, ref)


def test_vae_eval_uses_the_mean_and_training_samples():
    torch.manual_seed(0)
    vae = GaussianBottleneck(8, (16, 16), latent=20, kl_weight=1.0)
    z = torch.randn(2, 8, 16, 16)
    vae.eval()
    torch.testing.assert_close(vae(z).quantized, vae(z).quantized)
    vae.train()
    assert not torch.allclose(vae(z).quantized, vae(z).quantized)
    out = vae(z)
    assert float(out.loss.detach()) == pytest.approx(float(out.kl))
