import pytest
import torch

from usenhance.errors import UsenhanceError
from usenhance.perceptual import RANDOM_LABEL, VGG_FILE, build_lpips


def test_refusal_names_the_file_and_place(tmp_path):
    missing = tmp_path / "hub" / VGG_FILE
    with pytest.raises(UsenhanceError) as err:
        build_lpips(missing)
    msg = str(err.value)
    assert VGG_FILE in msg and str(missing) in msg and "--lpips-weights" in msg
    assert "nothing is downloaded" in msg


def test_bad_weights_file_is_refused(tmp_path):
    p = tmp_path / VGG_FILE
    torch.save({"features.0.weight": torch.zeros(1)}, p)
    with pytest.raises(UsenhanceError, match="not torchvision's VGG-16"):
        build_lpips(p)


def test_random_backbone_is_labelled_frozen_and_in_eval():
    m = build_lpips(random_backbone=True)
    assert m.label == RANDOM_LABEL and not m.is_real_lpips
    assert not any(p.requires_grad for p in m.module.parameters())
    m.module.train()
    assert not m.module.training and not any(x.training for x in m.module.modules())
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    y = torch.rand(2, 1, 32, 32) * 2 - 1
    d = m.module(x, y)
    assert d.shape == (2,) and torch.all(d > 0)
    assert torch.allclose(m.module(x, x), torch.zeros(2), atol=1e-6)
    # deterministic random trunk and gradients flow to the input (usable as a loss)
    d2 = build_lpips(random_backbone=True).module(x, y)
    assert torch.equal(d, d2)
    xg = x.clone().requires_grad_(True)
    m.module(xg, y).sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0


def test_linear_layers_are_the_shipped_lpips_weights():
    import inspect
    from pathlib import Path

    import lpips

    m = build_lpips(random_backbone=True)
    shipped = torch.load(Path(inspect.getfile(lpips.LPIPS)).parent / "weights/v0.1/vgg.pth",
                         map_location="cpu", weights_only=True)
    sd = m.module.inner.state_dict()
    for k, v in shipped.items():
        assert torch.equal(sd[k], v)


@pytest.mark.slow
def test_agrees_with_lpips_reference_given_vgg_weights(tmp_path):
    import lpips
    import torchvision

    vgg = torchvision.models.vgg16().state_dict()
    p = tmp_path / VGG_FILE
    torch.save(vgg, p)
    m = build_lpips(p)
    assert m.label == "LPIPS"
    ref = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False)
    ref.net.load_state_dict(m.module.inner.net.state_dict())
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    y = torch.rand(2, 1, 32, 32) * 2 - 1
    want = ref(x.expand(-1, 3, -1, -1), y.expand(-1, 3, -1, -1)).flatten()
    assert torch.allclose(m.module(x, y), want, atol=1e-6)
