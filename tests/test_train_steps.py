"""One Real-ESRGAN G step and D step, the Real-ESRNet step, and the EMA."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from resrgan.losses import PerceptualLoss, gan_loss
from resrgan.nets import SRVGGNetCompact
from resrgan.nets.unet_disc import UNetDiscriminatorSN
from resrgan.training.config import LossConfig
from resrgan.training.ema import ema_update, make_ema
from resrgan.training.steps import Batch, discriminator_step, esrnet_step, generator_step
from resrgan.weights.vgg19 import build_vgg19_features


def _setup(seed: int = 0) -> tuple[nn.Module, nn.Module, PerceptualLoss, Batch]:
    torch.manual_seed(seed)
    g = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4)
    d = UNetDiscriminatorSN(num_feat=8)
    percep = PerceptualLoss(build_vgg19_features("random"))
    gen = torch.Generator().manual_seed(seed)
    gt = torch.rand(2, 3, 32, 32, generator=gen)
    lq = torch.nn.functional.avg_pool2d(gt, 4)
    batch = Batch(lq=lq, gt=gt, gt_usm=(gt * 1.1).clamp(0, 1))
    return g, d, percep, batch


def _adam(net: nn.Module, lr: float = 1e-3) -> torch.optim.Adam:
    return torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.99))


def _scaler() -> torch.amp.GradScaler:
    return torch.amp.GradScaler("cpu", enabled=False)


def test_generator_step_keeps_d_frozen_and_reaches_every_g_parameter() -> None:
    g, d, percep, batch = _setup()
    out, logs = generator_step(g, d, percep, batch, _adam(g), _scaler(), LossConfig())
    assert set(logs) == {"l_g_pix", "l_g_percep", "l_g_gan"}
    assert all(torch.isfinite(v) for v in logs.values())
    assert out.shape == (2, 3, 32, 32) and not out.requires_grad
    for name, p in d.named_parameters():
        assert p.grad is None, f"D parameter {name} got a gradient in the G step"
    for name, p in g.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_generator_loss_is_l1_plus_percep_plus_weighted_gan() -> None:
    g, d, percep, batch = _setup()
    g0, d0 = copy.deepcopy(g), copy.deepcopy(d)
    _, logs = generator_step(g, d, percep, batch, _adam(g), _scaler(), LossConfig())
    with torch.no_grad():
        out = g0(batch.lq)
        l1 = (out - batch.gt_usm).abs().mean()  # L1 against the sharpened GT
        gan = 0.1 * gan_loss(d0(out), True)
    assert float(logs["l_g_pix"]) == pytest.approx(float(l1), rel=1e-6)
    assert float(logs["l_g_gan"]) == pytest.approx(float(gan), rel=1e-5)
    assert float(logs["l_g_percep"]) == pytest.approx(float(percep(out, batch.gt_usm)), rel=1e-5)


def test_discriminator_step_two_backwards_equal_the_summed_gradient() -> None:
    g, d, percep, batch = _setup()
    out, _ = generator_step(g, d, percep, batch, _adam(g), _scaler(), LossConfig())
    g_grads = {n: p.grad.clone() for n, p in g.named_parameters()}
    ref = copy.deepcopy(d)  # same weights and power-iteration vectors
    opt_d = torch.optim.SGD(d.parameters(), lr=0.0)  # lr 0 keeps the weights to compare grads
    logs = discriminator_step(d, out, batch, opt_d, _scaler(), LossConfig())
    assert all(torch.isfinite(v) for v in logs.values())
    # the same two forwards in the same order (spectral norm updates u, v on each), one backward
    ref.requires_grad_(True)
    total = gan_loss(ref(batch.gt), True) + gan_loss(ref(out), False)  # D real = unsharpened GT
    total.backward()
    for (name, p), (_, q) in zip(d.named_parameters(), ref.named_parameters(), strict=True):
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7)
    assert float(logs["l_d_real"]) + float(logs["l_d_fake"]) == pytest.approx(
        float(total.detach()), rel=1e-5
    )
    for n, p in g.named_parameters():  # the D step does not touch G
        torch.testing.assert_close(p.grad, g_grads[n])


def test_esrnet_first_adam_step_moves_each_weight_by_lr() -> None:
    g, _, _, batch = _setup()
    before = {n: p.detach().clone() for n, p in g.named_parameters()}
    with torch.no_grad():
        l1_before = float((g(batch.lq) - batch.gt).abs().mean())  # ESRNet: L1 against batch.gt
    lr = 1e-3
    logs = esrnet_step(g, batch, _adam(g, lr), _scaler(), LossConfig())
    assert float(logs["l_g_pix"]) == pytest.approx(l1_before, rel=1e-6)
    for n, p in g.named_parameters():
        grad = p.grad
        assert grad is not None
        big = grad.abs() > 1e-5  # Adam's first step is lr * sign(grad) where |grad| >> eps
        delta = (p.detach() - before[n])[big]
        torch.testing.assert_close(delta, -lr * grad[big].sign(), rtol=2e-2, atol=1e-6)


class _WithBuffer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.bn = nn.BatchNorm1d(2)


def test_ema_decay_zero_copies_and_one_keeps() -> None:
    torch.manual_seed(0)
    net = _WithBuffer()
    ema = make_ema(net)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
        net.bn.running_mean.fill_(5.0)
    kept = copy.deepcopy(ema.state_dict())
    ema_update(ema, net, 1.0)
    for k, v in ema.state_dict().items():
        torch.testing.assert_close(v, kept[k])
    ema_update(ema, net, 0.0)
    for (n, p), (_, q) in zip(ema.named_parameters(), net.named_parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=n)
    # buffers are not averaged (BasicSR averages named parameters only)
    assert float(ema.bn.running_mean.abs().sum()) == 0.0


def test_ema_formula_with_0999() -> None:
    torch.manual_seed(0)
    net = nn.Linear(4, 4)
    ema = make_ema(net)
    e0 = ema.weight.detach().clone()
    with torch.no_grad():
        net.weight.mul_(-2.0)
    ema_update(ema, net, 0.999)
    torch.testing.assert_close(ema.weight, 0.999 * e0 + 0.001 * net.weight.detach())
    assert not ema.weight.requires_grad and not ema.training


def test_ema_rejects_bad_decay() -> None:
    net = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="ema_decay must be in \\[0, 1\\], got 1.5"):
        ema_update(make_ema(net), net, 1.5)


def test_pool_targets_esrnet_pools_sharpened_gt_esrgan_recomputes_usm() -> None:
    from pathlib import Path

    from resrgan.degradation.params import sample_degradation
    from resrgan.degradation.pipeline import make_training_batch
    from resrgan.degradation.pool import PairPool
    from resrgan.degradation.sharpen import usm_sharpen
    from resrgan.training.config import load_train_config
    from resrgan.training.steps import synthesize_batch

    cfg = load_train_config(Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml")
    gt400 = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    params = sample_degradation(
        2, cfg.degradation, generator=torch.Generator().manual_seed(7), gt_size_in=(96, 96)
    )
    ref = make_training_batch(gt400, params, cfg.degradation)  # computed independently
    assert not torch.equal(ref.gt, ref.gt_usm)

    def run(model: str, losses: LossConfig = cfg.losses) -> tuple[Batch, PairPool]:
        pool = PairPool(4)
        b = synthesize_batch(
            gt400,
            dataclasses.replace(cfg, model=model, losses=losses),
            pool,
            generator=torch.Generator().manual_seed(7),
            pool_generator=torch.Generator().manual_seed(8),
        )
        return b, pool

    b, pool = run("esrnet")  # gt_usm: true -> L1 against the sharpened GT, which is pooled
    torch.testing.assert_close(b.lq, ref.lq, rtol=0, atol=0)
    torch.testing.assert_close(b.gt, ref.gt_usm, rtol=0, atol=0)
    torch.testing.assert_close(pool.gt[:2], ref.gt_usm, rtol=0, atol=0)
    # l1_gt_usm: false -> the same lq (from USM(gt)), the plain GT as target
    b, pool = run("esrnet", dataclasses.replace(cfg.losses, l1_gt_usm=False))
    torch.testing.assert_close(b.lq, ref.lq, rtol=0, atol=0)
    torch.testing.assert_close(b.gt, ref.gt, rtol=0, atol=0)
    torch.testing.assert_close(pool.gt[:2], ref.gt, rtol=0, atol=0)
    b, pool = run("esrgan")  # the pool holds the unsharpened GT; USM is recomputed after it
    torch.testing.assert_close(b.gt, ref.gt, rtol=0, atol=0)
    torch.testing.assert_close(pool.gt[:2], ref.gt, rtol=0, atol=0)
    torch.testing.assert_close(b.gt_usm, usm_sharpen(ref.gt), rtol=0, atol=0)
    # losses.usm_weight: a stronger (or weaker) USM in the targets, the same lq in both stages
    strong = dataclasses.replace(cfg.losses, usm_weight=1.0)
    assert not torch.equal(usm_sharpen(ref.gt, weight=1.0), ref.gt_usm)
    b, pool = run("esrnet", strong)
    torch.testing.assert_close(b.lq, ref.lq, rtol=0, atol=0)
    torch.testing.assert_close(b.gt, usm_sharpen(ref.gt, weight=1.0), rtol=0, atol=0)
    torch.testing.assert_close(pool.gt[:2], b.gt, rtol=0, atol=0)
    b, pool = run("esrgan", strong)
    torch.testing.assert_close(b.lq, ref.lq, rtol=0, atol=0)
    torch.testing.assert_close(b.gt, ref.gt, rtol=0, atol=0)
    torch.testing.assert_close(b.gt_usm, usm_sharpen(ref.gt, weight=1.0), rtol=0, atol=0)


def test_validation_metrics_closed_form() -> None:
    import math

    from resrgan.training.config import TrainConfig
    from resrgan.training.loop import ValSet, validate_net

    class Shift(nn.Module):  # nearest x4 upsampling plus a constant of 10/255
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.interpolate(x, scale_factor=4, mode="nearest") + 10 / 255

    gt = torch.full((2, 3, 32, 32), 100 / 255)
    vs = ValSet(lq=gt[:, :, ::4, ::4], gt=gt, names=["a", "b"])
    res = validate_net(Shift(), vs, TrainConfig(), torch.device("cpu"), save_dir=None)
    assert res["val_psnr"] == pytest.approx(10 * math.log10(255**2 / 100), rel=1e-9)  # MSE 10^2
    assert res["val_l1"] == pytest.approx(10 / 255, rel=1e-5)
    assert 0.9 < res["val_ssim"] < 1.0


class _SpyD(nn.Module):
    """Records what the discriminator is shown; its answer depends on every input channel."""

    def __init__(self, d: nn.Module) -> None:
        super().__init__()
        self.d = d
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.d(x)


def test_gan_luma_shows_the_discriminator_luma_and_leaves_colour_to_the_other_losses() -> None:
    from resrgan.color import BT601_LUMA, luma

    g, d, _, batch = _setup(3)
    spy = _SpyD(d)
    on = LossConfig(gan_luma=True, pixel_weight=0.0, perceptual_weight=0.0)
    out, _ = generator_step(g, spy, None, batch, _adam(g, lr=0.0), _scaler(), on)
    discriminator_step(spy, out, batch, _adam(d), _scaler(), on)
    shown_fake_g, shown_real, shown_fake_d = spy.seen
    torch.testing.assert_close(shown_real, luma(batch.gt).expand_as(batch.gt), rtol=0, atol=0)
    torch.testing.assert_close(shown_fake_d, luma(out).expand_as(out), rtol=0, atol=0)
    torch.testing.assert_close(shown_fake_g, shown_fake_d, rtol=0, atol=0)
    # the G step's only loss here is the adversarial one: its gradient on the output is the
    # same in R, G and B up to the luma weights, so it cannot change a pixel's colour
    g.zero_grad()
    x = g(batch.lq).detach().requires_grad_()
    gan_loss(d(luma(x).expand_as(x).contiguous()), True).backward()
    grad = x.grad
    assert grad is not None and grad.abs().sum() > 0
    w = torch.tensor(BT601_LUMA).view(1, 3, 1, 1)
    torch.testing.assert_close(grad / w, (grad / w)[:, :1].expand_as(grad), rtol=1e-4, atol=1e-9)
    # off (the default, as the original): D sees the pictures themselves
    spy.seen.clear()
    off = dataclasses.replace(on, gan_luma=False)
    out, _ = generator_step(g, spy, None, batch, _adam(g, lr=0.0), _scaler(), off)
    discriminator_step(spy, out, batch, _adam(d), _scaler(), off)
    torch.testing.assert_close(spy.seen[1], batch.gt, rtol=0, atol=0)
    torch.testing.assert_close(spy.seen[2], out, rtol=0, atol=0)


def test_gan_luma_reaches_the_training_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from _train_data import make_hr_folder
    from resrgan.cli import main

    seen: list[bool] = []
    real = UNetDiscriminatorSN.forward

    def spy(self: UNetDiscriminatorSN, x: torch.Tensor) -> torch.Tensor:
        seen.append(bool((x[:, 0] == x[:, 1]).all() and (x[:, 1] == x[:, 2]).all()))
        return real(self, x)

    monkeypatch.setattr(UNetDiscriminatorSN, "forward", spy)
    tmp = tmp_path
    hr = make_hr_folder(tmp / "hr", 4, seed=0)
    smoke = str(Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml")
    for flag in ("false", "true"):
        rc = main(
            ["train", smoke, "--data", str(hr), "--out", str(tmp / flag), "--quiet"]
            + ["--device", "cpu", "--iters", "2", "--set", f"losses.gan_luma={flag}"]
        )
        assert rc == 0
    assert seen == [False] * 6 + [True] * 6  # per step: D(fake) for G, D(real), D(fake) for D


def test_paired_batches_take_the_target_usm_weight() -> None:
    from pathlib import Path

    from resrgan.degradation.sharpen import usm_sharpen
    from resrgan.training.config import load_train_config
    from resrgan.training.steps import paired_batch

    cfg = load_train_config(Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml")
    lq = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    gt = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    b = paired_batch(lq, gt, dataclasses.replace(cfg, model="esrnet"))
    assert b.gt is gt and b.gt_usm is gt  # your own pairs: no sharpening in stage 1
    for w in (0.5, 1.5):
        losses = dataclasses.replace(cfg.losses, usm_weight=w)
        b = paired_batch(lq, gt, dataclasses.replace(cfg, model="esrgan", losses=losses))
        torch.testing.assert_close(b.gt_usm, usm_sharpen(gt, weight=w), rtol=0, atol=0)
    assert not torch.equal(usm_sharpen(gt, weight=1.5), usm_sharpen(gt))
