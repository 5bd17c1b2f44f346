"""The training loop of Real-ESRNet (stage 1) and Real-ESRGAN (stage 2), read top to bottom in
``train``.

The two stages differ only by config (``model: esrnet | esrgan``). Per iteration, in the main
process on the training device: sample degradation -> make_training_batch -> pool -> G step -> D
step -> EMA. Every random draw is a function of (seed, rank, step) and the data order a function of
(seed, position), so a resumed run continues bit for bit (on CPU in fp32) where an uninterrupted one
would be.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, ModelNotFoundError, UsageError, WeightsError
from ..paths import atomic_path
from ..seeds import derive_seed
from .checkpoint import (
    atomic_torch_save,
    list_states,
    load_latest_state,
    save_state,
)
from .config import TrainConfig, config_to_dict, load_train_config, validate
from .distributed import (
    DistInfo,
    EpochIndexed,
    ShardedBatchSampler,
    all_gather_object,
    all_reduce_mean,
    barrier,
    cleanup_distributed,
    init_distributed,
    make_generator,
)
from .ema import ema_decay_at, ema_update, make_ema, unwrap
from .guard import Guard, TrainingStopped, keep_last_good
from .logging import MetricsLogger
from .state import TrainState
from .steps import (
    Batch,
    discriminator_step,
    esrnet_step,
    generator_step,
    paired_batch,
    synthesize_batch,
)

log = logging.getLogger(__name__)

Callback = Callable[[dict[str, Any]], None]


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    model_path: Path
    last_val: dict[str, float] | None


# --------------------------------------------------------------------------------------------------
# building blocks


def build_generator(cfg: TrainConfig) -> nn.Module:
    from ..nets import RRDBNet, SRVGGNetCompact

    g = cfg.network_g
    if g.type == "RRDBNet":
        return RRDBNet(
            num_in_ch=g.num_in_ch,
            num_out_ch=g.num_out_ch,
            scale=cfg.scale,
            num_feat=g.num_feat,
            num_block=g.num_block,
            num_grow_ch=g.num_grow_ch,
        )
    net = SRVGGNetCompact(
        num_in_ch=g.num_in_ch,
        num_out_ch=g.num_out_ch,
        num_feat=g.num_feat,
        num_conv=g.num_conv,
        upscale=cfg.scale,
        act_type=g.act_type,
    )
    return net.he_init_(g.init_last_scale) if g.init == "he" else net


def build_discriminator(cfg: TrainConfig) -> nn.Module:
    from ..nets.unet_disc import UNetDiscriminatorSN

    d = cfg.network_d
    return UNetDiscriminatorSN(
        num_in_ch=d.num_in_ch, num_feat=d.num_feat, skip_connection=d.skip_connection
    )


def resolve_init(name_or_path: str, *, field: str) -> Path:
    """A weights path, or a zoo name (RealESRGAN_x4plus, RealESRNet_x4plus, ...) resolved through
    the zoo."""
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return p
    if p.suffix in (".pth", ".pt", ".safetensors", ".ckpt") or os.sep in name_or_path:
        raise ConfigError(f"{field}: weights file {p} does not exist")
    from ..weights.zoo import resolve_weights

    try:
        return resolve_weights(name_or_path)
    except ModelNotFoundError as e:
        raise ModelNotFoundError(f"{field}: {e}") from None


def load_init_weights(
    net: nn.Module, name_or_path: str, *, strict: bool, key: str | None, field: str
) -> list[str]:
    """Load pretrained weights. Non-strict loading skips keys whose shapes differ (as BasicSR
    renames them to ``<key>.ignore``) and missing keys; returns the skipped key names."""
    from ..weights.load import load_state_dict, load_strict

    path = resolve_init(name_or_path, field=field)
    try:
        sd = load_state_dict(path, key=key)
    except WeightsError:
        if key is None:
            raise
        sd = load_state_dict(path)  # fall back params_ema -> params -> bare, as BasicSR does
    own = net.state_dict()
    if strict:
        load_strict(
            net,
            sd,
            source=f"{field}: {path}",
            target="the configured network",
            hint="check network_g or set init_strict: false",
        )
        return []
    skipped = [k for k, v in sd.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    skipped += [k for k in own if k not in sd]
    usable = {k: v for k, v in sd.items() if k in own and k not in skipped}
    net.load_state_dict(usable, strict=False)
    if skipped:
        log.warning(
            "%s: %d key(s) not loaded from %s: %s",
            field,
            len(skipped),
            path,
            ", ".join(skipped[:6]),
        )
    return skipped


def build_dataset(cfg: TrainConfig) -> torch.utils.data.Dataset:
    root = cfg.data.root
    if not root:
        raise UsageError("data.root: no training data given; pass --data HR_DIR")
    if not Path(root).is_dir():
        raise ConfigError(f"data.root: folder {root} does not exist")
    if cfg.data.mode == "paired":
        from ..data.paired import PairedFolder

        return PairedFolder(
            root,
            str(cfg.data.lq_root),
            scale=cfg.scale,
            gt_size=cfg.degradation.gt_size,
            seed=cfg.seed,
            use_hflip=cfg.degradation.use_hflip,
            meta_info=cfg.data.meta_info,
        )
    from ..data.hr import HRFolder

    return HRFolder(
        root,
        crop_pad_size=cfg.degradation.crop_pad_size,
        use_hflip=cfg.degradation.use_hflip,
        gray_prob=cfg.data.gray_prob,
        seed=cfg.seed,
        meta_info=cfg.data.meta_info,
    )


def make_loader(
    dataset: torch.utils.data.Dataset, cfg: TrainConfig, info: DistInfo, start: int
) -> torch.utils.data.DataLoader:
    """An endless DataLoader whose batch ``j`` depends only on (seed, start + j)."""
    sampler = ShardedBatchSampler(
        len(dataset),
        batch_size=cfg.data.batch_size,  # type: ignore[arg-type]
        seed=cfg.seed,
        rank=info.rank,
        world_size=info.world_size,
        start=start,
    )
    nw = cfg.data.num_workers
    return torch.utils.data.DataLoader(
        EpochIndexed(dataset),
        batch_size=cfg.data.batch_size,
        sampler=sampler,  # type: ignore[arg-type]
        drop_last=True,
        num_workers=nw,
        persistent_workers=nw > 0,
        prefetch_factor=cfg.data.prefetch_factor if nw > 0 else None,
        pin_memory=info.device.type == "cuda",
        # the loader's base seed comes from here, not from the global RNG (workers draw nothing)
        generator=make_generator(cfg.seed, "loader", info.rank),
    )


RNG_STREAMS = ("degrade", "pool")


def rng_states(cfg: TrainConfig, info: DistInfo, next_step: int) -> dict[str, torch.Tensor]:
    """The states of the generators the next step will draw from.

    The loop owns no long-lived generator: step ``s`` of rank ``r`` draws from generators seeded
    with derive_seed(seed, stream, r, s) (the bulk noise inside the degradation is seeded from the
    sampled parameters). The states are stored so that a resume can check it re-derives the same
    streams.
    """
    return {
        name: make_generator(cfg.seed, name, info.rank, next_step).get_state()
        for name in RNG_STREAMS
    }


def check_rng_states(
    states: dict[str, torch.Tensor], cfg: TrainConfig, info: DistInfo, next_step: int
) -> None:
    expected = rng_states(cfg, info, next_step)
    for name, state in expected.items():
        if name in states and not torch.equal(states[name], state):
            raise ConfigError(
                f"checkpoint: the random stream '{name}' does not continue as saved (seed "
                f"{cfg.seed}); resume with the seed of the checkpointed run"
            )


def params_hash(*nets: nn.Module | None) -> str:
    h = hashlib.sha256()
    for net in nets:
        if net is None:
            continue
        for name, t in unwrap(net).state_dict().items():
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------
# validation


@dataclass
class ValSet:
    lq: torch.Tensor  # (N,3,h,w) on CPU
    gt: torch.Tensor  # (N,3,h*s,w*s), unsharpened
    names: list[str]


def build_val_set(cfg: TrainConfig) -> ValSet | None:
    """A fixed synthetic set: the first ``val.num_images`` HR images, cropped, degraded with
    ``val.seed``."""
    v = cfg.val
    if not v.hr_dir or v.num_images < 1 or cfg.data.mode == "paired" and not v.hr_dir:
        return None
    if not Path(v.hr_dir).is_dir():
        raise ConfigError(f"val.hr_dir: folder {v.hr_dir} does not exist")
    from ..data.hr import HRFolder
    from ..degradation.params import sample_degradation
    from ..degradation.pipeline import make_training_batch

    ds = HRFolder(
        v.hr_dir, crop_pad_size=cfg.degradation.crop_pad_size, use_hflip=False, seed=v.seed
    )
    n = min(v.num_images, len(ds))
    items = [ds[i] for i in range(n)]
    gt400 = torch.stack([it["gt"] for it in items])
    lqs, gts = [], []
    for i in range(n):  # one sample per draw: every image gets its own per-batch choices
        g = make_generator(v.seed, "val", i)
        params = sample_degradation(
            1, cfg.degradation, generator=g, gt_size_in=(gt400.shape[-2], gt400.shape[-1])
        )
        tb = make_training_batch(gt400[i : i + 1], params, cfg.degradation)
        lqs.append(tb.lq)
        gts.append(tb.gt)
    names = [Path(str(it["gt_path"])).stem for it in items]
    return ValSet(lq=torch.cat(lqs), gt=torch.cat(gts), names=names)


@torch.no_grad()
def validate_net(
    net: nn.Module, vs: ValSet, cfg: TrainConfig, device: torch.device, *, save_dir: Path | None
) -> dict[str, float]:
    """Mean L1, PSNR and SSIM of ``net`` on the validation set (BasicSR conventions on 8-bit RGB,
    border cropped by the scale) and the guard's colour/spread statistics (``output_stats``; the
    false-colour statistic runs the network again on grey copies of the inputs).

    The network runs as it trains, through its own ``forward`` under ``no_grad``: the upstream
    computation, not the upscaler's inference engine. With ``save_dir``, the first
    ``val.save_images`` outputs are saved, with ``preview.png``: one row per image, lq (nearest x
    scale) | output | gt.
    """
    from ..metrics.psnr_ssim import psnr, ssim
    from .guard import output_stats

    net.eval()
    outs, grey_outs = [], []  # grey_outs: the same inputs made grey; any colour is false colour
    for i in range(0, vs.lq.shape[0], cfg.val.batch_size):
        lq = vs.lq[i : i + cfg.val.batch_size].to(device)
        outs.append(net(lq).float().cpu())
        grey_outs.append(net(lq.mean(dim=1, keepdim=True).expand_as(lq)).float().cpu())
    raw = torch.cat(outs)
    stats = output_stats(raw, vs.gt, grey_out=torch.cat(grey_outs), lq=vs.lq)
    out = raw.nan_to_num(0.0).clamp(0, 1)
    out8 = (out * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    gt8 = (vs.gt.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    pairs = list(zip(out8, gt8, strict=True))
    res = {
        "val_l1": float((out - vs.gt).abs().mean()),
        "val_psnr": sum(psnr(a, b, crop_border=cfg.scale) for a, b in pairs) / len(pairs),
        "val_ssim": sum(ssim(a, b, crop_border=cfg.scale) for a, b in pairs) / len(pairs),
        **stats,
    }
    n = min(cfg.val.save_images, out.shape[0])
    if save_dir is not None and n > 0:
        import cv2
        import numpy as np

        save_dir.mkdir(parents=True, exist_ok=True)
        for j in range(n):
            cv2.imwrite(
                str(save_dir / f"{vs.names[j]}.png"), cv2.cvtColor(out8[j], cv2.COLOR_RGB2BGR)
            )
        lq8 = (vs.lq[:n].clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        lq8 = lq8.repeat(cfg.scale, axis=1).repeat(cfg.scale, axis=2)
        gap = np.full((out8.shape[1], 4, 3), 255, np.uint8)
        rows = [np.concatenate([lq8[j], gap, out8[j], gap, gt8[j]], axis=1) for j in range(n)]
        hgap = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
        grid = np.concatenate(
            [r for j, row in enumerate(rows) for r in ((hgap, row) if j else (row,))]
        )
        cv2.imwrite(str(save_dir / "preview.png"), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    return res


def _save_val_inputs(vs: ValSet, run_dir: Path, n: int) -> None:
    import cv2

    d = run_dir / "val" / "inputs"
    d.mkdir(parents=True, exist_ok=True)
    for j in range(min(n, vs.lq.shape[0])):
        for kind, t in (("lq", vs.lq[j]), ("gt", vs.gt[j])):
            img = (t.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype("uint8")
            cv2.imwrite(str(d / f"{vs.names[j]}_{kind}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


# --------------------------------------------------------------------------------------------------
# the run


def write_model(run_dir: Path, ema: nn.Module, cfg: TrainConfig, step: int) -> Path:
    """RUN_DIR/model.safetensors and RUN_DIR/model.pth ({'params_ema': ...}) from the EMA
    generator."""
    from ..weights.load import save_weights

    sd = unwrap(ema).state_dict()
    meta = {
        "arch": cfg.network_g.type,
        "scale": str(cfg.scale),
        "step": str(step),
        "stage": cfg.model,
        "name": cfg.name,
    }
    path = save_weights(run_dir / "model.safetensors", sd, metadata=meta)
    save_weights(run_dir / "model.pth", sd)
    return path


def train(
    cfg: TrainConfig | Mapping[str, Any] | str | os.PathLike[str],
    *,
    run_dir: str | os.PathLike[str],
    data_root: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    resume: bool = False,
    iters: int | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    callback: Callback | None = None,
) -> TrainResult:
    """Train Real-ESRNet or Real-ESRGAN as ``cfg`` says (a TrainConfig, a dict or a YAML path).

    ``run_dir`` receives config.yaml, metrics.jsonl, checkpoints/, val/ and model.{safetensors,pth}.
    ``resume`` continues from the newest valid checkpoint there. ``iters`` overrides
    ``total_iters``. ``callback`` receives every logged record (rank 0 only): ``{"step", "total",
    losses..., "lr_g"}``. Under torchrun each process runs this function; only rank 0 writes.
    """
    if isinstance(cfg, Mapping):
        from ..config import apply_overrides, from_dict

        cfg = from_dict(TrainConfig, apply_overrides(dict(cfg), list(overrides)))
    elif not isinstance(cfg, TrainConfig):
        cfg = load_train_config(cfg, list(overrides))
    elif overrides:
        from ..config import apply_overrides, from_dict

        cfg = from_dict(TrainConfig, apply_overrides(config_to_dict(cfg), list(overrides)))
    if data_root is not None:
        cfg = replace(cfg, data=replace(cfg.data, root=str(data_root)))
    if iters is not None:
        cfg = replace(cfg, total_iters=int(iters))
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: CUDA is not available here; use --device cpu")
    info = init_distributed(device)
    try:
        return _run(cfg, Path(run_dir), info, resume=resume, callback=callback)
    finally:
        cleanup_distributed()


def _run(
    cfg: TrainConfig, run_dir: Path, info: DistInfo, *, resume: bool, callback: Callback | None
) -> TrainResult:
    cfg = validate(cfg, world_size=info.world_size)
    device = info.device
    esrgan = cfg.model == "esrgan"

    # 1. run folder: never overwrite someone's run unless resuming it
    if list_states(run_dir) and not resume:
        raise UsageError(
            f"{run_dir}: already holds checkpoints; pass --resume to continue that run or choose "
            "another --out"
        )
    found = load_latest_state(run_dir) if resume else None
    if resume and found is None:
        log.warning("--resume: no valid checkpoint in %s; starting from scratch", run_dir)
    if info.is_main:
        import yaml

        run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(run_dir / "config.yaml") as tmp:
            tmp.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), encoding="utf-8")
    barrier(info)

    # 2. networks (initialised from the seed without touching the caller's global RNG), weights
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cfg.seed, "init"))
        net_g = build_generator(cfg)
        net_d = build_discriminator(cfg) if esrgan else None
    if found is None and cfg.init_from:
        load_init_weights(
            net_g, cfg.init_from, strict=cfg.init_strict, key="params_ema", field="init_from"
        )
    if found is None and net_d is not None and cfg.init_d_from:
        load_init_weights(net_d, cfg.init_d_from, strict=True, key="params", field="init_d_from")
    net_g_ema = make_ema(net_g)
    mf = torch.channels_last if cfg.channels_last else torch.contiguous_format
    for net in (net_g, net_d, net_g_ema):
        if net is not None:
            net.to(device=device, memory_format=mf)
    percep = None
    vgg_source = cfg.losses.vgg_weights
    effnet = cfg.losses.perceptual_net == "effnet_lite0"
    if esrgan and not effnet and vgg_source == "if-present" and cfg.losses.perceptual_weight > 0:
        from ..weights.vgg19 import hub_checkpoint_path, vgg19_if_present

        vgg_file = vgg19_if_present()  # not `found`: that is the checkpoint to resume from
        vgg_source = str(vgg_file) if vgg_file else ""
        if not vgg_file:
            log.warning(
                "losses.vgg_weights if-present: no %s: training without a perceptual loss "
                "(L1 + GAN)",
                hub_checkpoint_path(),
            )
    if (
        esrgan
        and (vgg_source or effnet)
        and cfg.losses.perceptual_weight > 0
        and any(cfg.losses.layer_weights)
    ):
        from ..losses import PerceptualLoss
        from ..nets.effnet_lite import EFFNET_LAYERS
        from ..weights.effnet_lite import build_effnet_lite0
        from ..weights.vgg19 import build_vgg19_features

        names = EFFNET_LAYERS if effnet else ("conv1_2", "conv2_2", "conv3_4", "conv4_4", "conv5_4")
        # layers with weight 0 are not computed: the net is truncated after the deepest used one
        lw = {n: w for n, w in zip(names, cfg.losses.layer_weights, strict=True) if w != 0}
        feats = (
            build_effnet_lite0(tuple(lw))
            if effnet
            else build_vgg19_features(vgg_source, layers=tuple(lw))
        )
        percep = PerceptualLoss(
            feats, layer_weights=lw, perceptual_weight=cfg.losses.perceptual_weight
        ).to(device)

    # 3. optimisers, schedulers (stepped once per iteration from iteration 2), grad scalers, pool
    o = cfg.optim
    opt_g = torch.optim.Adam(
        net_g.parameters(), lr=o.lr_g, betas=o.betas, weight_decay=o.weight_decay
    )
    sched_g = torch.optim.lr_scheduler.MultiStepLR(
        opt_g, milestones=list(o.milestones), gamma=o.gamma
    )
    scaler_g = torch.amp.GradScaler(
        device.type, enabled=cfg.amp == "fp16" and device.type == "cuda"
    )
    opt_d = sched_d = scaler_d = None
    if net_d is not None:
        opt_d = torch.optim.Adam(
            net_d.parameters(), lr=o.lr_d, betas=o.betas, weight_decay=o.weight_decay
        )
        sched_d = torch.optim.lr_scheduler.MultiStepLR(
            opt_d, milestones=list(o.milestones), gamma=o.gamma
        )
        scaler_d = torch.amp.GradScaler(device.type, enabled=scaler_g.is_enabled())
    pool = None
    if cfg.data.mode == "degrade" and cfg.degradation.queue_size > 0:
        from ..degradation.pool import PairPool

        pool = PairPool(cfg.degradation.queue_size)

    state = TrainState(
        net_g, net_g_ema, opt_g, sched_g, scaler_g, net_d, opt_d, sched_d, scaler_d, pool
    )

    # 4. resume: every piece of state, including the pool and the RNG states
    start = 0
    if found is not None:
        path, st = found
        start = int(st["step"])
        state.load_state_dict(st, device=device)
        if info.is_main:  # the states saved are rank 0's
            check_rng_states(st["rng"], cfg, info, start + 1)
        changed = _config_changes(st["config"], config_to_dict(cfg))
        if changed:
            log.warning(
                "resuming with a config that differs from the checkpoint's: %s",
                ", ".join(changed[:8]),
            )
        log.info("resumed from %s (step %d)", path, start)
    if start >= cfg.total_iters:
        log.info("nothing to do: the run is at step %d of %d", start, cfg.total_iters)

    # 5. multi-process wrappers, compilation
    g_train: nn.Module = net_g
    d_train: nn.Module | None = net_d
    if info.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        g_train = DDP(net_g, device_ids=ids)
        if net_d is not None:
            d_train = DDP(net_d, device_ids=ids)
    if cfg.compile:
        g_train = torch.compile(g_train)  # type: ignore[assignment]

    # 6. data, validation set, logging
    loader = make_loader(build_dataset(cfg), cfg, info, start)
    batches = iter(loader)
    val_set = build_val_set(cfg) if info.is_main else None
    logger = MetricsLogger(run_dir, tensorboard=cfg.tensorboard) if info.is_main else None
    last_val: dict[str, float] | None = None
    if val_set is not None and start == 0:
        _save_val_inputs(val_set, run_dir, cfg.val.save_images)
        last_val = validate_net(
            net_g_ema, val_set, cfg, device, save_dir=run_dir / "val" / "00000000"
        )
        if logger is not None:
            logger.log({"step": 0, **last_val})

    guard = Guard(cfg.guard, start=start)
    if found is not None and "guard" in found[1]:  # checkpoints before 2026-12-06 have none
        guard.load_state_dict(found[1]["guard"])

    def checkpoint(step: int) -> None:
        if info.is_main:
            st: dict[str, Any] = {
                "step": step,
                "config": config_to_dict(cfg),
                **state.state_dict(),
                "guard": guard.state_dict(),
                "rng": rng_states(cfg, info, step + 1),
                "data_position": step,
                "world_size": info.world_size,
            }
            write_model(run_dir, net_g_ema, cfg, step)
            save_state(run_dir, st, keep=cfg.checkpoint.keep)
        barrier(info)

    # 7. the loop
    net_g.train()
    if net_d is not None:
        net_d.train()
    t0 = time.perf_counter()
    step = start

    def val_step(step: int) -> bool:
        return cfg.val.every > 0 and (step % cfg.val.every == 0 or step == cfg.total_iters)

    try:
        for step in range(start + 1, cfg.total_iters + 1):
            data = next(batches)
            # BasicSR updates the learning rate from iteration 2, before the optimisation
            if step > 1:
                with warnings.catch_warnings():
                    # during net_d_init_iters G's schedule advances (as BasicSR's) before G's
                    # first optimiser step: by design, so torch's one-time warning is noise
                    warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step")
                    sched_g.step()
                if sched_d is not None:
                    sched_d.step()
            if cfg.data.mode == "paired":
                batch = paired_batch(data["lq"].to(device), data["gt"].to(device), cfg)
            else:
                batch = synthesize_batch(
                    data["gt"].to(device, non_blocking=True),
                    cfg,
                    pool,
                    generator=make_generator(cfg.seed, "degrade", info.rank, step),
                    pool_generator=make_generator(cfg.seed, "pool", info.rank, step),
                )
            if cfg.channels_last:
                batch = Batch(
                    *(
                        t.contiguous(memory_format=torch.channels_last)
                        for t in (batch.lq, batch.gt, batch.gt_usm)
                    )
                )

            if not esrgan:
                logs = esrnet_step(g_train, batch, opt_g, scaler_g, cfg.losses, amp=cfg.amp)
            else:
                assert d_train is not None and opt_d is not None and scaler_d is not None
                if step % cfg.net_d_iters == 0 and step > cfg.net_d_init_iters:
                    out, logs = generator_step(
                        g_train, d_train, percep, batch, opt_g, scaler_g, cfg.losses, amp=cfg.amp
                    )
                else:
                    with torch.no_grad():
                        out, logs = g_train(batch.lq), {}
                logs.update(
                    discriminator_step(
                        d_train, out, batch, opt_d, scaler_d, cfg.losses, amp=cfg.amp
                    )
                )
            ema_update(net_g_ema, net_g, ema_decay_at(step, cfg.ema_decay, warmup=cfg.ema_warmup))

            if step % cfg.log_every == 0 or step == cfg.total_iters:
                values = all_reduce_mean({k: float(v) for k, v in logs.items()}, info)
                rec = {
                    "step": step,
                    "total": cfg.total_iters,
                    **values,
                    "lr_g": opt_g.param_groups[0]["lr"],
                    "s_per_iter": (time.perf_counter() - t0) / max(1, step - start),
                }
                if logger is not None:
                    logger.log(rec)
                if callback is not None and info.is_main:
                    callback(rec)
                guard.check_losses(step, values)
            elif callback is not None and info.is_main:
                callback({"step": step, "total": cfg.total_iters})
            if val_set is not None and val_step(step):
                last_val = validate_net(
                    net_g_ema, val_set, cfg, device, save_dir=run_dir / "val" / f"{step:08d}"
                )
                if logger is not None:
                    logger.log({"step": step, **last_val})
                if callback is not None:
                    callback({"step": step, "total": cfg.total_iters, **last_val})
            if val_set is not None or info.distributed:
                _agree(guard.check_validation, step, last_val, info, at_val=val_step(step))
            if step % cfg.checkpoint.every == 0 or step == cfg.total_iters:
                if step % cfg.log_every:  # a checkpoint holds only finite losses
                    guard.check_losses(step, {k: float(v) for k, v in logs.items()})
                checkpoint(step)
    except TrainingStopped as e:
        raise _stopped(e, run_dir, net_g_ema, cfg, logger, info) from None

    # 8. the end: the EMA generator is current in model.safetensors / model.pth; ranks must agree
    if info.distributed:
        hashes = all_gather_object(params_hash(net_g, net_g_ema, net_d), info)
        if logger is not None:
            logger.log(
                {
                    "event": "ddp_check",
                    "step": step,
                    "world_size": info.world_size,
                    "identical": len(set(hashes)) == 1,
                    "hashes": hashes,
                }
            )
    if net_d is not None and info.is_main:
        sd_d = {k: v.detach().cpu() for k, v in net_d.state_dict().items()}
        atomic_torch_save({"params": sd_d}, run_dir / "net_d.pth")
    if logger is not None:
        logger.close()
    del batches, loader
    return TrainResult(
        run_dir=run_dir, step=step, model_path=run_dir / "model.safetensors", last_val=last_val
    )


def _agree(
    check: Callable[[int, dict[str, float]], None],
    step: int,
    stats: dict[str, float] | None,
    info: DistInfo,
    *,
    at_val: bool,
) -> None:
    """Run a validation guard check on rank 0 (which holds the validation set) and make every
    rank raise the same TrainingStopped, so none waits at a barrier for a rank that stopped."""
    if not at_val:
        return
    err: TrainingStopped | None = None
    if info.is_main and stats is not None and step > 0:
        try:
            check(step, stats)
        except TrainingStopped as e:
            err = e
    if info.distributed:
        found = all_gather_object((str(err), err.last_good) if err else None, info)[0]
        err = TrainingStopped(found[0], last_good=found[1]) if found else None
    if err is not None:
        raise err


def _stopped(
    e: TrainingStopped,
    run_dir: Path,
    ema: nn.Module,
    cfg: TrainConfig,
    logger: MetricsLogger | None,
    info: DistInfo,
) -> TrainingStopped:
    """After a guard stop (rank 0 writes): set aside checkpoints newer than the last good step,
    put the newest good EMA generator back into model.safetensors, and say where it is."""
    if not info.is_main:
        return e
    kept = keep_last_good(run_dir, e.last_good)
    if kept is not None:
        from .checkpoint import load_state, state_path

        ema.load_state_dict(load_state(state_path(run_dir, kept))["net_g_ema"])
        write_model(run_dir, ema, cfg, kept)
        where = (
            f"the last good model is step {kept}: {run_dir / 'model.safetensors'} (--resume "
            "continues from it)"
        )
    else:
        for name in ("model.safetensors", "model.pth"):
            (run_dir / name).unlink(missing_ok=True)
        where = "no checkpoint before it passed the guard"
    if logger is not None:
        logger.log({"event": "guard_stop", "message": str(e), "last_good": kept})
        logger.close()
    return TrainingStopped(f"{e}; {where}", last_good=e.last_good)


def _config_changes(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts (total_iters, data.root ignored)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new)):
            out += _config_changes(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    key = prefix.rstrip(".")
    if key in ("total_iters", "data.root") or old == new:
        return []
    return [f"{key}: {old!r} -> {new!r}"]


__all__ = ["TrainResult", "build_discriminator", "build_generator", "train"]
