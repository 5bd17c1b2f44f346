"""``enhance`` / ``RealESRGANer`` against an independent re-statement of the original algorithm.

``reference_enhance`` below restates ``RealESRGANer.enhance`` from the spec (§4.2) with cv2 and
torch on the whole image (no tiling): max > 256 -> 16-bit, GRAY2RGB / BGR2RGB, reflect pre_pad and
mod pad on the right and bottom, post-crop, clamp, RGB->BGR, BGR2GRAY for L, alpha second pass,
round, LANCZOS4.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from resrgan.errors import ModelNotFoundError, UsageError
from resrgan.infer.upscaler import RealESRGANer, Upscaler
from resrgan.nets import RRDBNet, SRVGGNetCompact


def reference_enhance(
    model: torch.nn.Module,
    scale: int,
    img: np.ndarray,
    *,
    pre_pad: int = 10,
    outscale: float | None = None,
    alpha_upsampler: str = "realesrgan",
    max_range: int | None = None,  # the original always uses the max > 256 rule
) -> tuple[np.ndarray, str]:
    h_input, w_input = img.shape[0:2]
    img = img.astype(np.float32)
    if max_range is None:
        max_range = 65535 if np.max(img) > 256 else 255
    img = img / max_range
    if img.ndim == 2:
        img_mode = "L"
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img_mode = "RGBA"
        alpha = img[:, :, 3]
        img = cv2.cvtColor(img[:, :, 0:3], cv2.COLOR_BGR2RGB)
        if alpha_upsampler == "realesrgan":
            alpha = cv2.cvtColor(alpha, cv2.COLOR_GRAY2RGB)
    else:
        img_mode = "RGB"
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def process(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.transpose(x, (2, 0, 1))).float().unsqueeze(0)
        if pre_pad:
            t = F.pad(t, (0, pre_pad, 0, pre_pad), "reflect")
        mod = {2: 2, 1: 4}.get(scale)
        mph = mpw = 0
        if mod is not None:
            _, _, h, w = t.shape
            if h % mod:
                mph = mod - h % mod
            if w % mod:
                mpw = mod - w % mod
            t = F.pad(t, (0, mpw, 0, mph), "reflect")
        with torch.no_grad():
            out = model(t)
        _, _, h, w = out.shape
        out = out[:, :, 0 : h - mph * scale, 0 : w - mpw * scale]
        _, _, h, w = out.shape
        out = out[:, :, 0 : h - pre_pad * scale, 0 : w - pre_pad * scale]
        o = out.data.squeeze().float().cpu().clamp_(0, 1).numpy()
        return np.transpose(o[[2, 1, 0], :, :], (1, 2, 0))

    output_img = process(img)
    if img_mode == "L":
        output_img = cv2.cvtColor(output_img, cv2.COLOR_BGR2GRAY)
    if img_mode == "RGBA":
        if alpha_upsampler == "realesrgan":
            output_alpha = cv2.cvtColor(process(alpha), cv2.COLOR_BGR2GRAY)
        else:
            h, w = alpha.shape[0:2]
            output_alpha = cv2.resize(alpha, (w * scale, h * scale), interpolation=cv2.INTER_LINEAR)
        output_img = cv2.cvtColor(output_img, cv2.COLOR_BGR2BGRA)
        output_img[:, :, 3] = output_alpha
    if max_range == 65535:
        output = (output_img * 65535.0).round().astype(np.uint16)
    else:
        output = (output_img * 255.0).round().astype(np.uint8)
    if outscale is not None and outscale != float(scale):
        output = cv2.resize(
            output,
            (int(w_input * outscale), int(h_input * outscale)),
            interpolation=cv2.INTER_LANCZOS4,
        )
    return output, img_mode


def _net(scale: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    if scale == 4:
        net = SRVGGNetCompact(num_feat=8, num_conv=3, upscale=4)
    else:
        net = RRDBNet(scale=scale, num_feat=8, num_block=1, num_grow_ch=4)
    # outputs spread over [0, 1] and beyond, so clamping and rounding are exercised
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3.0)
    return net.eval()


def _img(shape: tuple[int, ...], dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == np.uint16:
        return rng.integers(300, 65536, size=shape).astype(np.uint16)
    return rng.integers(0, 256, size=shape).astype(np.uint8)


def _assert_same(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    diff = np.abs(ours.astype(np.int64) - ref.astype(np.int64))
    # a float32 ulp (oneDNN kernel choice) can flip a rounding: about 1e-7 * 65535, so ~1 % of the
    # 16-bit values and ~0.01 % of the 8-bit ones may differ by one
    flips = 0.02 if ours.dtype == np.uint16 else 1e-3
    assert diff.max() <= 1 and (diff > 0).mean() < flips, f"max diff {diff.max()}"


CASES = [
    ("BGR", (19, 23, 3), np.uint8, 4),
    ("BGRA", (19, 23, 4), np.uint8, 4),
    ("gray", (19, 23), np.uint8, 4),
    ("16-bit BGR", (19, 23, 3), np.uint16, 4),
    ("16-bit BGRA", (19, 23, 4), np.uint16, 4),
    ("x2 odd size", (19, 23, 3), np.uint8, 2),
    ("x1 gray", (19, 22), np.uint8, 1),
]


@pytest.mark.parametrize("name,shape,dtype,scale", CASES, ids=[c[0] for c in CASES])
def test_enhance_matches_the_original_algorithm(
    name: str, shape: tuple[int, ...], dtype: type, scale: int
) -> None:
    net = _net(scale)
    img = _img(shape, dtype)
    ref, ref_mode = reference_enhance(net, scale, img, pre_pad=10)
    up = RealESRGANer(scale=scale, model_path=None, model=net, tile=0, pre_pad=10)
    out, mode = up.enhance(img)
    expect_mode = {3: "RGB", 4: "RGBA"}.get(shape[-1] if len(shape) == 3 else 0, "L")
    assert mode == ref_mode == expect_mode
    _assert_same(out, ref)


@pytest.mark.parametrize("outscale", [2, 3.5])
def test_enhance_outscale_matches_the_original(outscale: float) -> None:
    net = _net(4)
    img = _img((17, 21, 4))
    ref, _ = reference_enhance(net, 4, img, pre_pad=0, outscale=outscale)
    out, mode = Upscaler(net, tile=0, pre_pad=0).enhance(img, outscale=outscale)
    assert mode == "RGBA" and out.shape == (int(17 * outscale), int(21 * outscale), 4)
    _assert_same(out, ref)


def test_enhance_linear_alpha_matches_the_original() -> None:
    net = _net(4)
    img = _img((12, 14, 4), seed=3)
    ref, _ = reference_enhance(net, 4, img, pre_pad=0, alpha_upsampler="bicubic")
    out, _ = Upscaler(net, tile=0, pre_pad=0).enhance(img, alpha_upsampler="bicubic")
    _assert_same(out, ref)


def test_enhance_bit_depth_follows_dtype_not_max() -> None:
    # a 16-bit image whose values are all <= 256: the original would return uint8 (spec §4.2)
    net = _net(4)
    img = _img((10, 10, 3), seed=1).astype(np.uint16)
    out, mode = Upscaler(net, tile=0).enhance(img)
    assert out.dtype == np.uint16 and mode == "RGB"
    ref, _ = reference_enhance(net, 4, img, pre_pad=0, max_range=65535)
    _assert_same(out, ref)


def test_enhance_tiled_stays_close_to_untiled() -> None:
    net = _net(4)
    img = _img((40, 52, 3), seed=2)
    ref, _ = Upscaler(net, tile=0).enhance(img)
    out, _ = Upscaler(net, tile=16, tile_pad=6).enhance(img)
    _assert_same(out, ref)  # receptive field 5 px (5 convs) fits in tile_pad


def test_realesrganer_loads_weights_and_dni(tmp_path: Path) -> None:
    a, b = _net(4), SRVGGNetCompact(num_feat=8, num_conv=3, upscale=4)
    pa, pb = tmp_path / "a.pth", tmp_path / "b.pth"
    torch.save({"params": a.state_dict()}, pa)
    torch.save({"params": b.state_dict(), "params_ema": a.state_dict()}, pb)
    target = SRVGGNetCompact(num_feat=8, num_conv=3, upscale=4)
    up = RealESRGANer(scale=4, model_path=[str(pa), str(pb)], dni_weight=[0.25, 0.75], model=target)
    for k, v in up.model.state_dict().items():
        # DNI reads 'params' of both files, as the original
        torch.testing.assert_close(v, 0.25 * a.state_dict()[k] + 0.75 * b.state_dict()[k])
    single = RealESRGANer(
        scale=4, model_path=str(pb), model=SRVGGNetCompact(num_feat=8, num_conv=3)
    )
    for k, v in single.model.state_dict().items():  # params_ema preferred
        torch.testing.assert_close(v, a.state_dict()[k])


def test_realesrganer_refuses_urls_and_missing_model() -> None:
    with pytest.raises(ModelNotFoundError, match="is a URL and resrgan does not download here"):
        RealESRGANer(scale=4, model_path="https://x/y.pth", model=_net(4))
    with pytest.raises(UsageError, match="model= must be an nn.Module"):
        RealESRGANer(scale=4, model_path="y.pth")
    with pytest.raises(UsageError, match="scale: 2 but the model upscales x4; pass scale=4"):
        RealESRGANer(scale=2, model_path=None, model=_net(4))


def test_enhance_refuses_bad_shapes_with_message() -> None:
    with pytest.raises(UsageError, match=r"enhance: image shape \(4, 4, 2\) is not HxW"):
        Upscaler(_net(4), tile=0).enhance(np.zeros((4, 4, 2), np.uint8))
