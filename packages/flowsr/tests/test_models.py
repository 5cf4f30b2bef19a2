"""SURFR-Net pieces: pixel shuffle vs a reference loop, architecture, loss, gradcheck."""

from __future__ import annotations

import pytest
import torch

from flowsr.config import ModelConfig
from flowsr.losses import SURFRLoss, surfr_loss
from flowsr.models import SURFRNet, build_model, pixel_shuffle_3d


def _shuffle_loop(x, r):
    b, c, d, h, w = x.shape
    co = c // r**3
    out = torch.zeros(b, co, d * r, h * r, w * r, dtype=x.dtype)
    for ch in range(c):
        o, rem = divmod(ch, r**3)
        i, rem = divmod(rem, r * r)
        j, k = divmod(rem, r)
        out[:, o, i::r, j::r, k::r] = x[:, ch]
    return out


@pytest.mark.parametrize("r", [2, 3])
def test_pixel_shuffle_matches_reference_loop(r):
    x = torch.randn(2, 2 * r**3, 3, 2, 4)
    torch.testing.assert_close(pixel_shuffle_3d(x, r), _shuffle_loop(x, r))


def test_pixel_shuffle_reduces_to_2d_torch_semantics():
    x = torch.randn(1, 8, 3, 3, 1)
    y = pixel_shuffle_3d(x, 2)
    assert y[0, 0, 1, 0, 1].item() == x[0, 5, 0, 0, 0].item()  # channel i*4+j*2+k = 1*4+0+1


def test_architecture_shapes_and_variants():
    cfg = ModelConfig(channels=8, groups=3, blocks=3, reduction=4)
    net = SURFRNet(cfg)
    assert len(net.body) == 4 and len(net.body[0].body) == 4  # 3 groups + conv; 3 RCAB + conv
    out = net(torch.randn(2, 4, 6, 6, 4))
    assert out.velocity.shape == (2, 3, 12, 12, 8) and out.seg_logits.shape == (2, 1, 12, 12, 8)
    p = out.probability
    assert torch.all((p > 0) & (p < 1))
    sr = build_model({"channels": 8, "groups": 1, "blocks": 1, "reduction": 4, "use_wmf": False,
                      "segmentation": False})
    out = sr(torch.randn(1, 3, 4, 4, 4))
    assert out.seg_logits is None and out.probability is None
    with pytest.raises(ValueError, match="expects"):
        sr(torch.randn(1, 4, 4, 4, 4))


def test_loss_indicator_and_alpha():
    torch.manual_seed(0)
    v, t = torch.randn(4, 3, 4, 4, 4), torch.randn(4, 3, 4, 4, 4)
    logits, seg = torch.randn(4, 1, 4, 4, 4), (torch.rand(4, 1, 4, 4, 4) > 0.5).float()
    cfd = torch.tensor([1.0, 1.0, 0.0, 0.0])
    parts = surfr_loss(v, t, cfd, logits, seg, alpha=0.02)
    torch.testing.assert_close(parts.l1, (v[:2] - t[:2]).abs().mean())
    bce = torch.nn.functional.binary_cross_entropy(torch.sigmoid(logits), seg)
    torch.testing.assert_close(parts.bce, bce, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(parts.total, parts.l1 + 0.02 * parts.bce)
    # MRI samples never touch the velocity term
    t2 = t.clone()
    t2[2:] += 100
    torch.testing.assert_close(surfr_loss(v, t2, cfd, logits, seg).l1, parts.l1)
    only_mri = surfr_loss(v, t, torch.zeros(4), logits, seg)
    assert only_mri.l1.item() == 0.0
    assert SURFRLoss(0.5)(v, t, cfd, logits, seg).total.item() == pytest.approx(
        (parts.l1 + 0.5 * parts.bce).item(), rel=1e-5)


def test_gradcheck_loss_and_shuffle():
    torch.manual_seed(0)
    v = torch.randn(2, 3, 2, 2, 2, dtype=torch.double, requires_grad=True)
    t = torch.randn(2, 3, 2, 2, 2, dtype=torch.double) + 3.0
    lg = torch.randn(2, 1, 2, 2, 2, dtype=torch.double, requires_grad=True)
    sg = torch.rand(2, 1, 2, 2, 2, dtype=torch.double)
    cfd = torch.tensor([1.0, 0.0], dtype=torch.double)
    assert torch.autograd.gradcheck(lambda a, b: surfr_loss(a, t, cfd, b, sg, 0.3).total, (v, lg))
    x = torch.randn(1, 8, 2, 2, 1, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: pixel_shuffle_3d(a, 2), (x,))


def test_velocity_heads_are_independent():
    from flowsr.models.surfrnet import VelocityHeads

    torch.manual_seed(0)
    heads = VelocityHeads(4)
    x = torch.randn(1, 4, 5, 5, 5)
    h = torch.relu(heads.first(x))
    # output k depends only on block k of the hidden channels
    for k in range(3):
        h2 = h.clone()
        h2[:, [j for j in range(12) if j // 4 != k]] = torch.randn(1, 8, 5, 5, 5)
        out = torch.nn.functional.conv3d(h2, heads.second.weight * heads.block_mask,
                                         heads.second.bias, padding=1)
        ref = torch.nn.functional.conv3d(h, heads.second.weight * heads.block_mask,
                                         heads.second.bias, padding=1)
        torch.testing.assert_close(out[:, k], ref[:, k])
        assert not torch.allclose(out[:, (k + 1) % 3], ref[:, (k + 1) % 3])
