import torch

from usenhance.losses import (
    GeneratorLoss,
    cycle_l1,
    discriminator_loss,
    lsgan_loss,
    real_label,
)
from usenhance.models import PatchDiscriminator, UNetGenerator


def test_patchgan_30x30_for_256_and_spectral_norm():
    d = PatchDiscriminator(1, ndf=8)
    assert d(torch.zeros(1, 1, 256, 256)).shape == (1, 1, 30, 30)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5 and all(hasattr(m, "parametrizations") for m in convs)
    # spectral norm: each weight's largest singular value ~ 1 after power iterations
    d.train()
    for _ in range(30):
        d(torch.randn(1, 1, 64, 64))
    w = convs[1].weight.detach().flatten(1)
    assert abs(torch.linalg.matrix_norm(w, ord=2).item() - 1.0) < 0.05


def test_unet_structure_and_range():
    g = UNetGenerator(1, 1, ngf=8, num_downs=5)
    assert g.multiple == 32
    x = torch.randn(2, 1, 64, 96) * 5
    y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    kinds = {type(m) for m in g.modules()}
    assert torch.nn.InstanceNorm2d in kinds and torch.nn.LeakyReLU in kinds
    assert torch.nn.ReLU in kinds and torch.nn.Dropout in kinds and torch.nn.Tanh in kinds
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in g.modules())


def test_label_smoothing_rule():
    assert real_label([0.5, 0.89]) == 1.0
    assert real_label([0.95, 0.2]) == 0.9
    assert real_label([0.9, 0.1]) == 0.9


def test_lsgan_and_discriminator_loss_values():
    s = torch.full((2, 1, 3, 3), 0.5)
    assert torch.isclose(lsgan_loss(s, 1.0), torch.tensor(0.25))
    assert torch.isclose(discriminator_loss(s, torch.zeros_like(s), 0.9), torch.tensor(0.5 * 0.16))
    x = torch.randn(3, 4, dtype=torch.double, requires_grad=True)
    y = torch.randn(3, 4, dtype=torch.double)
    assert torch.autograd.gradcheck(lambda a: lsgan_loss(a, 0.9).double(), (x,))
    assert torch.autograd.gradcheck(lambda a: cycle_l1(a, y).double(), (x,))


class _ConstPerceptual(torch.nn.Module):
    def forward(self, a, b):
        return (a - b).abs().mean(dim=(1, 2, 3)) * 3


def test_generator_loss_weights():
    torch.manual_seed(0)
    low, high, fh, fl, rl, rh = (torch.rand(2, 1, 8, 8) for _ in range(6))
    sfh, sfl = torch.rand(2, 1, 2, 2), torch.rand(2, 1, 2, 2)
    loss = GeneratorLoss(1.0, 10.0, 2.0, 10.0, _ConstPerceptual())
    t = loss(low, high, fh, fl, rl, rh, sfh, sfl)
    adv = ((sfh - 1) ** 2).mean() + ((sfl - 1) ** 2).mean()
    cyc = (high - rh).abs().mean() + (low - rl).abs().mean()
    pair = (high - fh).abs().mean() + (low - fl).abs().mean()
    per = 3 * pair
    assert torch.isclose(t.total, adv + 10 * cyc + 2 * pair + 10 * per, atol=1e-6)
    plain = GeneratorLoss(1.0, 10.0, 0.0, 0.0, None)(low, high, fh, fl, rl, rh, sfh, sfl)
    assert torch.isclose(plain.total, adv + 10 * cyc, atol=1e-6) and plain.perceptual == 0
