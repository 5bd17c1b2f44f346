"""Upscaler and its engine: layouts and dtypes, pads, tiling quality, outscale, OOM retry,
precision fallback, batches, runners."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resrgan.errors import ResrganError, UsageError
from resrgan.infer import fastrrdb
from resrgan.infer.engine import Engine, auto_tile
from resrgan.infer.precision import half_output_is_bad, resolve_precision
from resrgan.infer.upscaler import MIN_TILE, Upscaler
from resrgan.nets import RRDBNet, SRVGGNetCompact
from resrgan.weights.load import save_weights


class Nearest(nn.Module):
    """Nearest-neighbour x``scale``: the exact reference for every layout and bit depth."""

    def __init__(self, scale: int = 4) -> None:
        super().__init__()
        self.scale = scale
        self.anchor = nn.Parameter(torch.zeros(1))  # so .to(dtype) has something to convert

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="nearest") + self.anchor


class Recorder(nn.Module):
    """Wraps a net and records the shapes it is called with."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.scale = net.scale
        self.shapes: list[tuple[int, ...]] = []
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        self.inputs.append(x.detach().clone())
        return self.net(x)


def _rand(shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    top = 65535 if dtype == np.uint16 else 255
    return np.random.default_rng(seed).integers(0, top + 1, size=shape).astype(dtype)


def _nearest_ref(img: np.ndarray, s: int) -> np.ndarray:
    return img.repeat(s, axis=0).repeat(s, axis=1)


def _psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak * peak / mse)


def _tiny_srvgg(scale: int = 4, seed: int = 0) -> SRVGGNetCompact:
    torch.manual_seed(seed)
    return SRVGGNetCompact(num_feat=8, num_conv=2, upscale=scale)


# --------------------------------------------------------------------------- layouts and dtypes
@pytest.mark.parametrize(
    "shape,dtype",
    [
        ((13, 17), np.uint8),
        ((13, 17, 1), np.uint8),
        ((13, 17, 2), np.uint8),
        ((13, 17, 3), np.uint8),
        ((13, 17, 4), np.uint16),
        ((13, 17, 3), np.uint16),
        ((13, 17), np.uint16),
    ],
)
def test_layout_and_dtype_round_trip_exactly_through_nearest_net(
    shape: tuple[int, ...], dtype: type
) -> None:
    img = _rand(shape, dtype)
    out = Upscaler(Nearest(4), tile=0).upscale(img)
    assert out.dtype == dtype and out.shape == (52, 68, *shape[2:])
    np.testing.assert_array_equal(out, _nearest_ref(img, 4))


def test_16bit_rgba_keeps_16_bits_and_alpha_through_model_pass() -> None:
    img = _rand((9, 11, 4), np.uint16, seed=3)
    img[..., 3] = np.linspace(0, 65535, 11, dtype=np.uint16)[None, :]
    out = Upscaler(Nearest(2), tile=0).upscale(img)
    assert out.dtype == np.uint16 and out.shape == (18, 22, 4)
    np.testing.assert_array_equal(out[..., 3], _nearest_ref(img[..., 3], 2))
    np.testing.assert_array_equal(out, _nearest_ref(img, 2))
    assert np.any(out[..., :3] % 257 != 0)  # not squeezed through 8 bits


def test_gray_goes_through_rgb_and_back_with_bgr2gray_weights() -> None:
    net = _tiny_srvgg()
    img = _rand((10, 12), np.uint8, seed=5)
    out = Upscaler(net, tile=0).upscale(img)
    rgb = Upscaler(net, tile=0).upscale(np.repeat(img[..., None], 3, axis=2))
    # the RGB run quantises each channel; the gray path converts before quantising: +-1
    up = Upscaler(net, tile=0)
    x = torch.from_numpy(img.astype(np.float32) / 255)[None, None].expand(1, 3, -1, -1)
    with torch.no_grad():
        y = net(x)[0].clamp(0, 1).permute(1, 2, 0).numpy()
    gray = cv2.cvtColor(np.ascontiguousarray(y), cv2.COLOR_RGB2GRAY)
    np.testing.assert_array_equal(out, np.rint(gray * 255).astype(np.uint8))
    assert up.scale == 4 and out.shape == (40, 48)
    assert np.abs(out.astype(int) - cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)).max() <= 1


def test_la_input_gives_la_output_with_alpha_from_second_pass() -> None:
    net = Recorder(_tiny_srvgg())
    img = _rand((8, 9, 2), np.uint8, seed=7)
    out = Upscaler(net, tile=0).upscale(img)
    assert out.shape == (32, 36, 2) and out.dtype == np.uint8
    assert len(net.shapes) == 2  # luminance pass + alpha pass
    la_alone = Upscaler(net.net, tile=0).upscale(img[..., 1])
    np.testing.assert_array_equal(out[..., 1], la_alone)


def test_bicubic_alpha_upsampler_resizes_alpha_without_a_second_pass() -> None:
    net = Recorder(Nearest(2))
    img = _rand((8, 9, 4), np.uint8, seed=2)
    out = Upscaler(net, tile=0, alpha_upsampler="bicubic").upscale(img)
    assert len(net.shapes) == 1
    a = cv2.resize(img[..., 3].astype(np.float32) / 255, (18, 16), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(out[..., 3], np.rint(np.clip(a, 0, 1) * 255).astype(np.uint8))


def test_pil_in_pil_out_same_mode() -> None:
    from PIL import Image

    up = Upscaler(Nearest(2), tile=0)
    for mode, shape in (("RGB", (5, 6, 3)), ("RGBA", (5, 6, 4)), ("L", (5, 6)), ("LA", (5, 6, 2))):
        arr = _rand(shape, np.uint8)
        im = Image.fromarray(arr, mode=mode)
        out = up.upscale(im)
        assert isinstance(out, Image.Image) and out.mode == mode and out.size == (12, 10)
        np.testing.assert_array_equal(np.asarray(out), _nearest_ref(arr, 2))
    pal = Image.fromarray(_rand((5, 6, 3), np.uint8)).convert("P")
    assert up.upscale(pal).mode == "RGB"
    deep = _rand((5, 6), np.uint16)
    out16 = up.upscale(Image.fromarray(deep))
    assert out16.mode == "I;16"
    np.testing.assert_array_equal(np.asarray(out16), _nearest_ref(deep, 2))


def test_path_in_array_out(tmp_path: Path) -> None:
    img = _rand((7, 8, 3), np.uint8)
    p = tmp_path / "x.png"
    cv2.imwrite(str(p), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    out = Upscaler(Nearest(2), tile=0).upscale(p)
    np.testing.assert_array_equal(out, _nearest_ref(img, 2))


def test_input_is_not_mutated() -> None:
    img = _rand((9, 9, 4), np.uint8)
    before = img.copy()
    Upscaler(_tiny_srvgg(), tile=4 * 2, pre_pad=2).upscale(img)
    np.testing.assert_array_equal(img, before)


# --------------------------------------------------------------------------- pads
def test_pre_pad_reflects_right_and_bottom_and_is_cropped_off() -> None:
    net = Recorder(Nearest(4))
    img = _rand((12, 12, 3), np.uint8)
    out = Upscaler(net, tile=0, pre_pad=2).upscale(img)
    assert net.shapes == [(1, 3, 14, 14)]  # 12 -> 14 like the original's test
    x = torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None]
    torch.testing.assert_close(net.inputs[0], F.pad(x, (0, 2, 0, 2), mode="reflect"))
    np.testing.assert_array_equal(out, _nearest_ref(img, 4))


@pytest.mark.parametrize(
    "scale,size,pre_pad,seen",
    [
        (2, (13, 10), 0, (14, 10)),
        (1, (13, 10), 0, (16, 12)),
        (1, (9, 9), 2, (12, 12)),
        (4, (13, 10), 0, (13, 10)),
    ],
)
def test_mod_pad_for_pixel_unshuffle_models(
    scale: int, size: tuple[int, int], pre_pad: int, seen: tuple[int, int]
) -> None:
    torch.manual_seed(0)
    net = Recorder(RRDBNet(scale=scale, num_feat=8, num_block=1, num_grow_ch=4))
    img = _rand((*size, 3), np.uint8)
    out = Upscaler(net, tile=0, pre_pad=pre_pad).upscale(img)
    assert net.shapes[0][2:] == seen
    assert out.shape == (size[0] * scale, size[1] * scale, 3)
    x = torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None]
    x = F.pad(x, (0, pre_pad, 0, pre_pad), mode="reflect") if pre_pad else x
    x = F.pad(x, (0, seen[1] - x.shape[3], 0, seen[0] - x.shape[2]), mode="reflect")
    torch.testing.assert_close(net.inputs[0], x)


# --------------------------------------------------------------------------- tiling
def _record_fast_rrdb(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Input shapes of every call of the engine's fast RRDBNet inference."""
    shapes: list[tuple[int, ...]] = []
    real = fastrrdb.forward

    def spy(net: RRDBNet, x: torch.Tensor, **kw: object) -> torch.Tensor:
        shapes.append(tuple(x.shape))
        return real(net, x, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(fastrrdb, "forward", spy)
    return shapes


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_tiles_of_rrdbnet_are_whole_blocks_of_its_trunk(
    scale: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """x2 / x1 tiles must be multiples of the pixel-unshuffle (2 / 4; odd tiles crashed), and
    on the CPU in fp32 of 4 of those (RRDBNet's Winograd trunk computes 4x4 blocks anyway)."""
    torch.manual_seed(0)
    net = RRDBNet(scale=scale, num_feat=8, num_block=1, num_grow_ch=4)
    img = _rand((101, 97, 3), np.uint8, seed=scale)
    ref = Upscaler(net, tile=0).upscale(img)
    shapes = _record_fast_rrdb(monkeypatch)
    for tile in (32, 40):
        up = Upscaler(net, tile=tile, tile_pad=8, tile_overlap=8)
        shapes.clear()
        out = up.upscale(img)
        unshuffle = {4: 1, 2: 2, 1: 4}[scale]
        assert len(shapes) > 4
        assert all(h % (4 * unshuffle) == 0 and w % (4 * unshuffle) == 0
                   for h, w in (s[2:] for s in shapes))  # fmt: skip
        assert out.shape == ref.shape == (101 * scale, 97 * scale, 3)
        mse = np.mean((out.astype(np.float64) - ref) ** 2)
        assert mse < 255**2 / 1e4  # > 40 dB: tiles and the whole image nearly agree
    fp16_like = Upscaler(net, tile=32, precision="bf16")
    assert fp16_like.engine.tile_multiple == {4: 1, 2: 2, 1: 4}[scale]  # only the unshuffle then


def test_tiled_equals_untiled_for_small_receptive_field_net() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 3 * 16, 3, padding=1), nn.PixelShuffle(4))
    net.scale = 4  # type: ignore[assignment]
    img = _rand((70, 90, 3), np.uint16, seed=9)
    ref = Upscaler(net, tile=0).upscale(img)
    for overlap in (0, 5, 24):
        out = Upscaler(net, tile=32, tile_pad=2, tile_overlap=overlap).upscale(img)
        diff = np.abs(out.astype(np.int64) - ref)
        # blending identical values in float32 may flip a rounding tie: at most 1 in 65535
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def _photo_crop(real_lr_dir: Path, h: int, w: int) -> np.ndarray:
    img = cv2.imread(str(real_lr_dir / "OST_009.png"), cv2.IMREAD_COLOR)
    return cv2.cvtColor(img[200 : 200 + h, 150 : 150 + w], cv2.COLOR_BGR2RGB)


class DeepConv(nn.Module):
    """Image + a random-init 40-conv residual (receptive field radius 40 px), then nearest x4.

    Deep enough that the original's hard crop with 10 px context misses 45 dB on a photo; a random
    RRDBNet is not (its 0.2-scaled residuals keep far pixels' influence negligible).
    """

    scale = 4

    def __init__(self, depth: int = 40, gain: float = 1.5) -> None:
        super().__init__()
        torch.manual_seed(0)
        layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, padding=1)]
        for _ in range(depth - 2):
            layers += [nn.LeakyReLU(0.2), nn.Conv2d(16, 16, 3, padding=1)]
        layers += [nn.LeakyReLU(0.2), nn.Conv2d(16, 3, 3, padding=1)]
        self.body = nn.Sequential(*layers)
        self.gain = gain
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0.2, nonlinearity="leaky_relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x + self.gain * self.body(x), scale_factor=4, mode="nearest")


def test_tiled_matches_untiled_at_45db_random_deep_net_real_photo(real_lr_dir: Path) -> None:
    net = DeepConv()
    img = _photo_crop(real_lr_dir, 64, 128)
    ref = Upscaler(net, tile=0).upscale(img)
    hard = Upscaler(net, tile=64, tile_overlap=0).upscale(img)  # the original's hard crop
    out = Upscaler(net, tile=64).upscale(img)
    assert _psnr(out, ref) >= 45.0, f"tiled vs untiled {_psnr(out, ref):.2f} dB"
    assert _psnr(hard, ref) < 45.0  # the net really has a receptive field beyond tile_pad


def test_tiled_matches_untiled_at_45db_official_x4plus(real_lr_dir: Path, ncnn_models_dir) -> None:
    from resrgan.weights.zoo import load_zoo_model

    net, _info = load_zoo_model("RealESRGAN_x4plus")
    img = _photo_crop(real_lr_dir, 64, 128)
    ref = Upscaler(net, tile=0).upscale(img)
    out = Upscaler(net, tile=64).upscale(img)
    assert _psnr(out, ref) >= 45.0, f"tiled vs untiled {_psnr(out, ref):.2f} dB"


def test_auto_tile_is_untiled_when_the_image_fits_and_bounded_otherwise() -> None:
    assert auto_tile(100, 100, bytes_per_pixel=1000, free_bytes=10**8, margin=34) == 0
    t = auto_tile(4000, 4000, bytes_per_pixel=1000, free_bytes=10**8, margin=34)
    assert t == (316 - 68) // 8 * 8  # sqrt(1e5) = 316 padded side
    assert auto_tile(4000, 4000, bytes_per_pixel=1000, free_bytes=10, margin=34) == MIN_TILE


def test_progress_reports_every_tile_of_every_pass() -> None:
    calls: list[tuple[int, int]] = []
    Upscaler(Nearest(2), tile=8, tile_pad=1, tile_overlap=2).upscale(
        _rand((16, 20, 4), np.uint8), progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(i, 12) for i in range(1, 13)]  # 2 x 3 tiles, colour + alpha


# --------------------------------------------------------------------------- outscale
@pytest.mark.parametrize("outscale", [1.5, 2, 3.3, 4, 0.5])
def test_outscale_size_and_lanczos_of_the_quantised_output(outscale: float) -> None:
    net = _tiny_srvgg()
    img = _rand((15, 21, 3), np.uint8)
    up = Upscaler(net, tile=0)
    full = up.upscale(img)
    out = up.upscale(img, outscale=outscale)
    h, w = int(15 * outscale), int(21 * outscale)
    assert out.shape == (h, w, 3) and up.output_shape(15, 21, outscale=outscale) == (h, w)
    if outscale != 4:
        np.testing.assert_array_equal(
            out, cv2.resize(full, (w, h), interpolation=cv2.INTER_LANCZOS4)
        )
    else:
        np.testing.assert_array_equal(out, full)


def test_outscale_keeps_gray_2d_and_la_channels() -> None:
    up = Upscaler(Nearest(4), tile=0)
    assert up.upscale(_rand((10, 10), np.uint8), outscale=1.5).shape == (15, 15)
    assert up.upscale(_rand((10, 10, 2), np.uint16), outscale=3.3).shape == (33, 33, 2)


def test_bad_outscale_is_refused_with_message() -> None:
    up = Upscaler(Nearest(4), tile=0)
    with pytest.raises(UsageError, match="outscale: -1 is not a positive number"):
        up.upscale(_rand((4, 4, 3), np.uint8), outscale=-1)
    with pytest.raises(UsageError, match="use a larger outscale"):
        up.upscale(_rand((4, 4, 3), np.uint8), outscale=0.1)


# --------------------------------------------------------------------------- OOM and precision
class FlakyOOM(nn.Module):
    """Raises a CPU allocator error for inputs larger than ``limit`` pixels (``times`` times)."""

    def __init__(self, net: nn.Module, limit: int, times: int = 10**9) -> None:
        super().__init__()
        self.net, self.scale, self.limit, self.times = net, net.scale, limit, times
        self.sizes: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append((x.shape[2], x.shape[3]))
        if x.shape[2] * x.shape[3] > self.limit and self.times > 0:
            self.times -= 1
            raise RuntimeError(
                "DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 GB"
            )
        return self.net(x)


def test_oom_halves_the_tile_and_retries_the_whole_image(caplog: pytest.LogCaptureFixture) -> None:
    inner = Nearest(2)
    net = FlakyOOM(inner, limit=80 * 80)
    img = _rand((100, 120, 3), np.uint8)
    with caplog.at_level(logging.WARNING, logger="resrgan.infer.engine"):
        out = Upscaler(net, tile=0, tile_pad=4, tile_overlap=4).upscale(img)
    np.testing.assert_array_equal(out, _nearest_ref(img, 2))
    assert "out of memory at tile 120; retrying the image with tile 60" in caplog.text
    assert max(h * w for h, w in net.sizes[1:]) <= 80 * 80  # no failed tile reused


def test_after_an_oom_retry_later_images_start_at_the_tile_that_worked() -> None:
    net = FlakyOOM(Nearest(2), limit=80 * 80)
    up = Upscaler(net, tile=0, tile_pad=4, tile_overlap=4)
    img = _rand((100, 120, 3), np.uint8)
    up.upscale(img)
    net.sizes.clear()
    np.testing.assert_array_equal(up.upscale(img), _nearest_ref(img, 2))
    assert max(h * w for h, w in net.sizes) <= 80 * 80  # no failing first attempt this time
    small = _rand((20, 30, 3), np.uint8)  # smaller than the cap: one tile, as configured
    net.sizes.clear()
    up.upscale(small)
    assert net.sizes == [(20, 30)]


def test_oom_down_to_the_floor_raises_a_clear_error() -> None:
    net = FlakyOOM(Nearest(2), limit=10)
    with pytest.raises(
        ResrganError, match=r"out of memory on cpu even at tile 32 for a 130x70 image"
    ):
        Upscaler(net, tile=64).upscale(_rand((70, 130, 3), np.uint8))


def test_non_oom_errors_propagate_unchanged() -> None:
    class Broken(nn.Module):
        scale = 2

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("shape mismatch somewhere")

    with pytest.raises(RuntimeError, match="shape mismatch somewhere"):
        Upscaler(Broken(), tile=0).upscale(_rand((8, 8, 3), np.uint8))


class BadInHalf(nn.Module):
    """NaN (or zeros) when run in reduced precision, a plain upscale in fp32."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind, self.scale = kind, 2
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.interpolate(x, scale_factor=2, mode="nearest") * self.w
        if self.w.dtype != torch.float32:  # weights in bf16/fp16: the reduced-precision run
            return y * float("nan") if self.kind == "nan" else y * 0
        return y


@pytest.mark.parametrize("kind", ["nan", "black"])
def test_bad_half_precision_result_is_redone_in_fp32(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    img = _rand((10, 12, 3), np.uint8, seed=4) | 16  # non-black
    up = Upscaler(BadInHalf(kind), tile=0, precision="bf16")
    assert up.dtype == torch.bfloat16
    with caplog.at_level(logging.WARNING, logger="resrgan.infer.engine"):
        out = up.upscale(img)
    np.testing.assert_array_equal(out, _nearest_ref(img, 2))
    assert "bfloat16 result had NaN/Inf or was black; redoing the image in fp32" in caplog.text
    assert up.dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_one_non_finite_value_marks_a_half_output_bad(dtype: torch.dtype, value: float) -> None:
    x = torch.full((1, 3, 8, 8), 0.5)
    y = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(dtype)
    assert not half_output_is_bad(x, y)
    y[0, 2, 17, 5] = value
    assert half_output_is_bad(x, y)
    assert half_output_is_bad(x, torch.zeros_like(y))  # black from a non-black input
    assert not half_output_is_bad(torch.zeros_like(x), torch.zeros_like(y))


def test_black_input_in_half_precision_is_not_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    up = Upscaler(BadInHalf("black"), tile=0, precision="bf16")
    with caplog.at_level(logging.WARNING):
        out = up.upscale(np.zeros((6, 6, 3), np.uint8))
    assert not out.any() and "redoing" not in caplog.text and up.dtype == torch.bfloat16


def test_bf16_on_cpu_stays_close_to_fp32() -> None:
    net = _tiny_srvgg()
    img = _rand((24, 24, 3), np.uint8)
    a = Upscaler(net, tile=0, precision="fp32").upscale(img)
    b = Upscaler(_tiny_srvgg(), tile=0, precision="bf16").upscale(img)
    assert 30.0 < _psnr(a, b) < float("inf")


def test_precision_auto_is_fp32_on_cpu() -> None:
    assert Upscaler(Nearest(2), device="cpu").dtype == torch.float32


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "want"),
    [
        (True, False, torch.bfloat16),
        (False, True, torch.bfloat16),
        (False, False, torch.float32),
    ],
)
def test_precision_half_is_bf16_only_on_a_cpu_with_native_bf16(
    monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool, amx: bool, want: torch.dtype
) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert resolve_precision("half", torch.device("cpu")) == want
    assert resolve_precision("auto", torch.device("cpu")) == torch.float32
    assert resolve_precision("half", torch.device("cuda")) == torch.float16


# --------------------------------------------------------------------------- construction
def test_model_from_weights_file_detects_architecture(tmp_path: Path) -> None:
    net = _tiny_srvgg(scale=2)
    p = save_weights(tmp_path / "tiny.safetensors", net.state_dict())
    up = Upscaler(str(p), tile=0)
    assert up.scale == 2
    img = _rand((6, 7, 3), np.uint8)
    np.testing.assert_array_equal(up.upscale(img), Upscaler(net, tile=0).upscale(img))
    up2 = Upscaler(_tiny_srvgg(scale=2, seed=1), model_path=p, tile=0)
    np.testing.assert_array_equal(up2.upscale(img), up.upscale(img))


def test_scale_is_probed_for_modules_without_a_scale_attribute() -> None:
    net = nn.Sequential(nn.Conv2d(3, 12, 1), nn.PixelShuffle(2))
    assert Upscaler(net, tile=0).scale == 2


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"tile": -1}, "tile: -1 is not a size"),
        ({"tile": "big"}, "tile: 'big' is not a size"),
        ({"precision": "fp8"}, "precision: 'fp8' is not one of auto, half, fp32, fp16, bf16"),
        ({"alpha_upsampler": "linear"}, "alpha_upsampler: 'linear' is not 'model'"),
        ({"tile_pad": -2}, "tile_pad: -2 is negative; use 0 or more"),
        ({"tile_overlap": 1.5}, "tile_overlap: 1.5 is not a whole number"),
        ({"tile": 4}, "tile: 4 is too small; use at least 8"),
        ({"denoise_strength": 2}, r"denoise_strength: 2 is outside \[0, 1\]"),
        ({"device": "cuda:3"}, "CUDA is not available"),
        ({"device": "mps"}, "device: 'mps' requested but MPS is not available; use device='cpu'"),
        ({"device": "gpu7"}, "device: 'gpu7' is not a torch device"),
    ],
)
def test_bad_arguments_are_refused_with_messages(kwargs: dict, message: str) -> None:
    if kwargs.get("device") == "cuda:3" and torch.cuda.is_available():
        pytest.skip("CUDA present")
    if kwargs.get("device") == "mps" and torch.backends.mps.is_available():
        pytest.skip("MPS present")
    with pytest.raises(UsageError, match=message):
        Upscaler(Nearest(2), **kwargs)


def test_unsupported_pixels_are_refused_with_messages() -> None:
    up = Upscaler(Nearest(2), tile=0)
    with pytest.raises(UsageError, match="dtype float32 is not supported; pass uint8 or uint16"):
        up.upscale(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(UsageError, match=r"shape \(4, 4, 5\) is not HxW"):
        up.upscale(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(UsageError, match="unsupported type list"):
        up.upscale([[1, 2]])  # type: ignore[arg-type]


def test_output_shape_matches_upscale() -> None:
    up = Upscaler(Nearest(4), tile=0)
    assert up.output_shape(10, 7) == (40, 28)
    assert up.output_shape(10, 7, outscale=4.0) == (40, 28)
    assert up.output_shape(10, 7, outscale=2.5) == (25, 17)
    with pytest.raises(UsageError, match="image size 0x7 must be positive"):
        up.output_shape(0, 7)


def test_bf16_upscaler_on_rrdbnet_is_close_to_fp32() -> None:
    torch.manual_seed(0)
    net = RRDBNet(num_feat=8, num_block=2, num_grow_ch=4)
    img = _rand((16, 16, 3), np.uint8)
    a = Upscaler(net, tile=0).upscale(img)
    b = Upscaler(net, tile=0, precision="bf16").upscale(img)
    assert 35.0 < _psnr(a, b) < float("inf")


def test_auto_tile_tiles_only_when_memory_is_short(monkeypatch: pytest.MonkeyPatch) -> None:
    up = Upscaler(Nearest(2), tile="auto", tile_pad=2, tile_overlap=2)
    img = _rand((64, 64, 3), np.uint8)
    totals: list[int] = []
    up.upscale(img, progress=lambda d, t: totals.append(t))
    assert totals == [1]  # plenty of free memory: one tile
    per_px = up.engine.bytes_per_input_pixel()
    monkeypatch.setattr(up.engine, "_free_memory", lambda: 40 * 40 * per_px + img.nbytes * 4)
    totals.clear()
    out = up.upscale(img, progress=lambda d, t: totals.append(t))
    assert totals[-1] == 4  # a 32-px core (40 - 2 * (2 + 2) -> 32) fits: 2 x 2 tiles
    np.testing.assert_array_equal(out, _nearest_ref(img, 2))


@pytest.mark.slow
def test_compiled_network_gives_the_same_result() -> None:
    img = _rand((16, 16, 3), np.uint8)
    a = Upscaler(_tiny_srvgg(), tile=0).upscale(img)
    b = Upscaler(_tiny_srvgg(), tile=0, compile=True).upscale(img)
    assert np.abs(a.astype(int) - b).max() <= 1


def test_zoo_name_with_a_pth_suffix_names_the_zoo_model(ncnn_models_dir) -> None:
    """As the original CLI: ``RealESRGAN_x4plus.pth`` drops everything after the first '.'."""
    from resrgan.infer.upscaler import Upscaler

    up = Upscaler("realesr-animevideov3.pth", tile=0)
    assert up.scale == 4 and up.model_name == "realesr-animevideov3"


def test_half_precision_fallback_is_for_that_image_only(caplog: pytest.LogCaptureFixture) -> None:
    """The fp32 redo leaves the configured network alone: the next image tries bf16 again."""
    net = Recorder(BadInHalf("black"))  # a black input is no failure: bf16 stands
    up = Upscaler(net, tile=0, precision="bf16")
    good, bad = np.zeros((6, 6, 3), np.uint8), _rand((6, 6, 3), np.uint8, seed=4) | 16
    with caplog.at_level(logging.WARNING, logger="resrgan.infer.engine"):
        up.upscale(bad)
        assert up.dtype == torch.float32
        np.testing.assert_array_equal(up.upscale(good), _nearest_ref(good, 2))
    assert up.dtype == torch.bfloat16 and up.model.net.w.dtype == torch.bfloat16
    assert len(net.shapes) == 2  # the bf16 attempts (the fp32 redo runs a copy)
    assert caplog.text.count("redoing the image in fp32") == 1


# --------------------------------------------------------------------------- batches and runners
@pytest.mark.parametrize("tile", [0, 16])
def test_batch_equals_frame_by_frame_in_one_network_call_per_tile(tile: int) -> None:
    torch.manual_seed(0)
    net = Recorder(RRDBNet(scale=2, num_feat=8, num_block=1, num_grow_ch=4))
    frames = np.stack([_rand((30, 26, 4), np.uint16, seed=i) for i in range(3)])
    up = Upscaler(net, tile=tile, tile_pad=4, tile_overlap=4)
    each = [up.upscale(f) for f in frames]
    calls = len(net.shapes)
    net.shapes.clear()
    out = up.upscale_batch(frames)
    assert out.shape == (3, 60, 52, 4) and out.dtype == np.uint16
    for got, want in zip(out, each, strict=True):
        # a batched convolution may round one float differently: +-1 in 65535, rarely
        diff = np.abs(got.astype(np.int64) - want)
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    assert len(net.shapes) == calls // 3 and all(s[0] == 3 for s in net.shapes)


def test_engine_upscale_tensor_equals_frame_by_frame() -> None:
    net = _tiny_srvgg(scale=2)
    engine = Engine(net, device=torch.device("cpu"), dtype=torch.float32, tile=16, tile_pad=6)
    x = torch.rand(2, 3, 36, 30, generator=torch.Generator().manual_seed(0))  # no mod pad
    y = engine.upscale_tensor(x)
    assert y.shape == (2, 3, 72, 60) and y.dtype == torch.float32
    with torch.no_grad():
        for i in range(2):  # receptive field 4 px <= tile_pad: tiles equal the whole frame
            torch.testing.assert_close(y[i], net(x[i : i + 1])[0], rtol=0, atol=1e-6)


class NumpyNearest:
    """A runner outside torch (as an onnxruntime session would be): NCHW in, NCHW x2 out."""

    scale = 2

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = x.cpu().numpy().repeat(2, axis=2).repeat(2, axis=3)
        return torch.from_numpy(np.ascontiguousarray(y)).to(x.device)


class NumpyModule(nn.Module):
    """The same runtime as an ``nn.Module`` without parameters and with a ``scale``
    (resrgan.infer.onnxrt's shape)."""

    scale = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return NumpyNearest()(x)


@pytest.mark.parametrize("runtime", [NumpyNearest, NumpyModule], ids=["callable", "module"])
def test_another_runtime_goes_through_the_same_tiles_and_planes(runtime: type) -> None:
    img = _rand((21, 34, 4), np.uint16, seed=1)
    calls: list[tuple[int, int]] = []
    engine = Engine(runtime(), device=torch.device("cpu"), dtype=torch.float32, tile=16)
    assert engine.scale == 2 and engine.tile_multiple == 2
    up = Upscaler(Nearest(2), tile=16)
    up.engine = engine
    out = up.upscale(img, progress=lambda d, t: calls.append((d, t)))
    np.testing.assert_array_equal(out, _nearest_ref(img, 2))
    assert calls[-1] == (12, 12)  # 2 x 3 tiles (multiples of 2), colour + alpha
