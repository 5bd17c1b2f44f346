"""One training iteration, split into plain functions (spec §1.4 steps 0 and 10-13, §1.8, §2.4).

* ``synthesize_batch``: degradation on the training device, then the pair pool, with the target
  rules of each stage: Real-ESRNet (``gt_usm: true``) trains L1 against the sharpened GT and pools
  it; Real-ESRGAN pools the unsharpened GT and recomputes ``gt_usm`` after the pool.
* ``esrnet_step``: L1 only. ``generator_step`` / ``discriminator_step``: the Real-ESRGAN G and D
  updates (D frozen during the G step; its two terms back-propagated separately into the same
  gradients).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ..color import luma as to_luma
from ..losses import PerceptualLoss, chroma_l1_loss, gan_loss, l1_loss
from .config import LossConfig, TrainConfig
from .ema import unwrap


@dataclass
class Batch:
    """A training batch after degradation and the pool: lq (B,3,h,w), gt and gt_usm
    (B,3,h*s,w*s)."""

    lq: torch.Tensor
    gt: torch.Tensor
    gt_usm: torch.Tensor


@contextlib.contextmanager
def autocast(device: torch.device, amp: str) -> Iterator[None]:
    """bf16/fp16 autocast on CUDA when asked; a no-op otherwise (CPU training is fp32)."""
    if amp == "none" or device.type != "cuda":
        yield
        return
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    with torch.autocast(device_type="cuda", dtype=dtype):
        yield


@torch.no_grad()
def synthesize_batch(
    gt400: torch.Tensor,
    cfg: TrainConfig,
    pool: object | None,
    *,
    generator: torch.Generator,
    pool_generator: torch.Generator,
) -> Batch:
    """HR crops (B,3,400,400) on the training device -> a Batch, exactly as the original
    ``feed_data``."""
    from ..degradation.params import sample_degradation
    from ..degradation.pipeline import make_training_batch
    from ..degradation.sharpen import USM_WEIGHT, usm_sharpen

    deg = cfg.degradation
    if cfg.model == "esrgan" and not deg.gt_usm:
        # gt_usm is a Real-ESRNet option: Real-ESRGAN always degrades from USM(gt) (§1.4 step 0)
        deg = dataclasses.replace(deg, gt_usm=True)
    params = sample_degradation(
        gt400.shape[0], deg, generator=generator, gt_size_in=(gt400.shape[-2], gt400.shape[-1])
    )
    tb = make_training_batch(gt400, params, deg)
    lq = tb.lq
    if cfg.model == "esrnet":
        # upstream: L1 against USM(gt) when gt_usm; losses.l1_gt_usm: false keeps the lq made
        # from USM(gt) but makes the plain gt the target (what a PSNR against gt rewards)
        gt = tb.gt_usm if deg.gt_usm and cfg.losses.l1_gt_usm else tb.gt
        if gt is tb.gt_usm and cfg.losses.usm_weight != USM_WEIGHT:
            gt = usm_sharpen(tb.gt, weight=cfg.losses.usm_weight)
        if pool is not None:
            lq, gt = pool.push_pop(lq, gt, generator=pool_generator)  # type: ignore[attr-defined]
        return Batch(lq=lq.contiguous(), gt=gt, gt_usm=gt)
    gt = tb.gt
    if pool is not None:
        lq, gt = pool.push_pop(lq, gt, generator=pool_generator)  # type: ignore[attr-defined]
    return Batch(lq=lq.contiguous(), gt=gt, gt_usm=usm_sharpen(gt, weight=cfg.losses.usm_weight))


@torch.no_grad()
def paired_batch(lq: torch.Tensor, gt: torch.Tensor, cfg: TrainConfig) -> Batch:
    """Your own pairs (spec §3.4): no degradation, no pool; ``gt_usm = USM(gt)`` for Real-ESRGAN."""
    if cfg.model == "esrnet":
        return Batch(lq=lq.contiguous(), gt=gt, gt_usm=gt)
    from ..degradation.sharpen import usm_sharpen

    return Batch(lq=lq.contiguous(), gt=gt, gt_usm=usm_sharpen(gt, weight=cfg.losses.usm_weight))


def _backward_step(
    loss: torch.Tensor, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler
) -> None:
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()


def esrnet_step(
    net_g: nn.Module,
    batch: Batch,
    opt_g: torch.optim.Optimizer,
    scaler_g: torch.amp.GradScaler,
    losses: LossConfig,
    *,
    amp: str = "none",
) -> dict[str, torch.Tensor]:
    """Real-ESRNet: one Adam step on ``pixel_weight * L1(G(lq), gt)`` (+ the chroma term when
    ``chroma_weight`` > 0)."""
    opt_g.zero_grad(set_to_none=True)
    with autocast(batch.lq.device, amp):
        out = net_g(batch.lq)
        logs: dict[str, torch.Tensor] = {}
        total = _pixel_terms(out, batch.gt, losses, logs)
    _backward_step(total, opt_g, scaler_g)
    return logs


def _pixel_terms(
    out: torch.Tensor, target: torch.Tensor, losses: LossConfig, logs: dict[str, torch.Tensor]
) -> torch.Tensor:
    """``pixel_weight * L1`` and ``chroma_weight * chroma L1`` (each when its weight is > 0)
    against ``target``, in fp32; logs ``l_g_pix`` / ``l_g_chroma``."""
    total = out.new_zeros((), dtype=torch.float32)
    for weight, name, fn in (
        (losses.pixel_weight, "l_g_pix", l1_loss),
        (losses.chroma_weight, "l_g_chroma", chroma_l1_loss),
    ):
        if weight > 0:
            term = fn(out.float(), target, weight=weight)
            total = total + term
            logs[name] = term.detach()
    return total


def _d_input(x: torch.Tensor, losses: LossConfig) -> torch.Tensor:
    """What the discriminator sees: the picture, or with ``losses.gan_luma`` its BT.601 luma in
    all three channels (so the adversarial loss pushes texture, never colour)."""
    return to_luma(x).expand_as(x).contiguous() if losses.gan_luma else x


def generator_step(
    net_g: nn.Module,
    net_d: nn.Module,
    percep: PerceptualLoss | None,
    batch: Batch,
    opt_g: torch.optim.Optimizer,
    scaler_g: torch.amp.GradScaler,
    losses: LossConfig,
    *,
    amp: str = "none",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Real-ESRGAN G step: L1 (+ chroma) + perceptual (against gt_usm) + gan_weight *
    BCE(D(out), real).

    D is frozen (``requires_grad_(False)``) and called unwrapped, so no gradient reaches it and DDP
    does not wait for its gradients. Returns the output (for the D step) and the logs.
    """
    d = unwrap(net_d)
    d.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    l1_target = batch.gt_usm if losses.l1_gt_usm else batch.gt
    percep_target = batch.gt_usm if losses.percep_gt_usm else batch.gt
    logs: dict[str, torch.Tensor] = {}
    with autocast(batch.lq.device, amp):
        out = net_g(batch.lq)
        total = _pixel_terms(out, l1_target, losses, logs)
        if percep is not None and losses.perceptual_weight > 0:
            l_percep = percep(out, percep_target).float()
            total = total + l_percep
            logs["l_g_percep"] = l_percep.detach()
        fake = d(_d_input(out, losses))
        l_gan = gan_loss(fake.float(), True, weight=losses.gan_weight)
        total = total + l_gan
        logs["l_g_gan"] = l_gan.detach()
    _backward_step(total, opt_g, scaler_g)
    return out.detach(), logs


def discriminator_step(
    net_d: nn.Module,
    out: torch.Tensor,
    batch: Batch,
    opt_d: torch.optim.Optimizer,
    scaler_d: torch.amp.GradScaler,
    losses: LossConfig,
    *,
    amp: str = "none",
) -> dict[str, torch.Tensor]:
    """Real-ESRGAN D step: BCE(D(gt), real).backward(); BCE(D(out), fake).backward(); one Adam step.

    The real input is the unsharpened GT unless ``gan_gt_usm``. With ``gan_luma`` D sees the
    BT.601 luma of both (``_d_input``).
    """
    unwrap(net_d).requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    real_in = batch.gt_usm if losses.gan_gt_usm else batch.gt
    with autocast(batch.lq.device, amp):
        real = net_d(_d_input(real_in, losses))
        l_real = gan_loss(real.float(), True)
    scaler_d.scale(l_real).backward()
    with autocast(batch.lq.device, amp):
        fake = net_d(_d_input(out.detach(), losses).clone())
        l_fake = gan_loss(fake.float(), False)
    scaler_d.scale(l_fake).backward()
    scaler_d.step(opt_d)
    scaler_d.update()
    return {
        "l_d_real": l_real.detach(),
        "out_d_real": real.detach().float().mean(),
        "l_d_fake": l_fake.detach(),
        "out_d_fake": fake.detach().float().mean(),
    }
