"""TrainState: the checkpoint's object entries, saved and restored in one symmetric place."""

from __future__ import annotations

import io
from typing import Any

import torch
from torch import nn

from resrgan.degradation.pool import PairPool
from resrgan.nets import SRVGGNetCompact
from resrgan.nets.unet_disc import UNetDiscriminatorSN
from resrgan.training.ema import make_ema
from resrgan.training.state import TrainState


def _opt(net: nn.Module) -> tuple[torch.optim.Optimizer, Any, torch.amp.GradScaler]:
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 5], gamma=0.5)
    return opt, sched, torch.amp.GradScaler("cpu", enabled=False)


def _state(seed: int, *, esrgan: bool = True) -> TrainState:
    torch.manual_seed(seed)
    g = SRVGGNetCompact(num_feat=4, num_conv=1, upscale=2)
    opt_g, sched_g, scaler_g = _opt(g)
    if not esrgan:
        return TrainState(g, make_ema(g), opt_g, sched_g, scaler_g)
    d = UNetDiscriminatorSN(num_in_ch=3, num_feat=4)
    opt_d, sched_d, scaler_d = _opt(d)
    return TrainState(
        g, make_ema(g), opt_g, sched_g, scaler_g, d, opt_d, sched_d, scaler_d, PairPool(4)
    )


def _train(st: TrainState, steps: int) -> None:
    gen = torch.Generator().manual_seed(5)
    for _ in range(steps):
        lq = torch.rand(2, 3, 8, 8, generator=gen)
        gt = torch.rand(2, 3, 16, 16, generator=gen)
        if st.pool is not None:
            lq, gt = st.pool.push_pop(lq, gt, generator=gen)
        pairs = [(st.net_g, st.opt_g, st.sched_g, (st.net_g(lq) - gt).abs().mean())]
        if st.net_d is not None:
            assert st.opt_d is not None
            pairs.append((st.net_d, st.opt_d, st.sched_d, st.net_d(gt).mean()))
        for _net, opt, sched, loss in pairs:
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()


def _through_a_file(sd: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint gives back: saved, then loaded with ``weights_only=True`` (so only tensors
    and plain containers pass), sharing no storage with the live objects."""
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_the_keys_are_the_checkpoint_format() -> None:
    assert list(_state(0).state_dict()) == [
        "net_g", "net_g_ema", "optim_g", "sched_g", "scaler_g", "pool",
        "net_d", "optim_d", "sched_d", "scaler_d",
    ]  # fmt: skip
    stage1 = _state(0, esrgan=False).state_dict()
    assert list(stage1) == ["net_g", "net_g_ema", "optim_g", "sched_g", "scaler_g", "pool"]
    assert stage1["pool"] is None


def test_load_state_dict_restores_what_state_dict_saved() -> None:
    trained = _state(0)
    _train(trained, 4)  # past a milestone, the pool full and swapping
    saved = _through_a_file(trained.state_dict())
    fresh = _state(1)
    assert not _equal(fresh.state_dict(), saved)
    fresh.load_state_dict(saved, device="cpu")
    assert _equal(fresh.state_dict(), saved)
    assert fresh.sched_g.get_last_lr() == trained.sched_g.get_last_lr() == [5e-4]


def test_a_restored_state_trains_on_identically() -> None:
    a = _state(0)
    _train(a, 3)
    b = _state(1)
    b.load_state_dict(_through_a_file(a.state_dict()), device="cpu")
    _train(a, 2)
    _train(b, 2)
    assert _equal(a.state_dict(), b.state_dict())
