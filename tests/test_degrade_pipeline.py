"""The second-order pipeline (spec §1.4) and the training-pair pool (§1.8)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from resrgan.degradation.config import DegradationConfig
from resrgan.degradation.params import DegradationParams, sample_degradation
from resrgan.degradation.pipeline import degrade, make_training_batch, paired_crop
from resrgan.degradation.pool import PairPool
from resrgan.degradation.sharpen import usm_sharpen
from resrgan.errors import ConfigError

CFG = DegradationConfig()


def photo(b: int, size: int = 400, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, size // 16, size // 16, generator=g)
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic").clamp(0, 1)


def params(b: int, seed: int, cfg: DegradationConfig = CFG, **replace) -> DegradationParams:
    p = sample_degradation(b, cfg, generator=torch.Generator().manual_seed(seed))
    return dataclasses.replace(p, **replace)


@pytest.fixture(scope="module")
def gt() -> torch.Tensor:
    return photo(2)


def test_x4_shapes_quantised_range_and_input_untouched(gt: torch.Tensor) -> None:
    before = gt.clone()
    lq = degrade(gt, params(2, 0), CFG)
    assert lq.shape == (2, 3, 100, 100) and lq.dtype == torch.float32
    assert lq.min() >= 0 and lq.max() <= 1
    torch.testing.assert_close(lq * 255, (lq * 255).round(), atol=1e-4, rtol=0)
    assert torch.equal(gt, before)


def test_training_batch_x4_x2_x1_shapes(gt: torch.Tensor) -> None:
    b4 = make_training_batch(gt, params(2, 1), CFG)
    assert (b4.lq.shape, b4.gt.shape, b4.gt_usm.shape) == (
        (2, 3, 64, 64),
        (2, 3, 256, 256),
        (2, 3, 256, 256),
    )
    cfg2 = DegradationConfig(scale=2)
    b2 = make_training_batch(gt, params(2, 1, cfg2), cfg2)
    assert (b2.lq.shape, b2.gt.shape) == ((2, 3, 128, 128), (2, 3, 256, 256))
    cfg1 = DegradationConfig(scale=1)
    b1 = make_training_batch(gt, params(2, 1, cfg1), cfg1)
    assert (b1.lq.shape, b1.gt.shape) == ((2, 3, 256, 256), (2, 3, 256, 256))


def test_same_params_same_output_different_params_differ(gt: torch.Tensor) -> None:
    a = degrade(gt, params(2, 5), CFG)
    b = degrade(gt, params(2, 5), CFG)
    c = degrade(gt, params(2, 6), CFG)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("order", ["resize_first", "jpeg_first"])
@pytest.mark.parametrize("resize", ["up", "down", "keep"])
def test_every_branch_runs_and_stays_close_to_the_gt(
    gt: torch.Tensor, order: str, resize: str
) -> None:
    p = params(2, 11)
    factor = {"up": 1.4, "down": 0.5, "keep": 1.0}[resize]
    st1 = dataclasses.replace(p.stage1, resize=resize, resize_scale=factor)
    st2 = dataclasses.replace(p.stage2, resize=resize, resize_scale=min(factor, 1.2))
    lq = degrade(gt, dataclasses.replace(p, stage1=st1, stage2=st2, final_order=order), CFG)
    assert lq.shape == (2, 3, 100, 100)
    ref = torch.nn.functional.interpolate(gt, size=(100, 100), mode="area")
    # a degraded version of the same picture: correlated with the clean downscale
    corr = torch.corrcoef(torch.stack([lq.flatten(), ref.flatten()]))[0, 1]
    assert corr > 0.5


def test_mild_settings_give_a_near_area_downscale() -> None:
    """Pulse kernels, no resize, ~no noise, quality 100, area modes: the LQ is the area-downscaled
    GT up to 8-bit rounding (a gray GT, so 4:2:0 chroma subsampling loses nothing)."""
    gt = photo(2, seed=1)[:, :1].expand(-1, 3, -1, -1) * torch.tensor([1.0, 0.9, 0.8]).view(3, 1, 1)
    p = params(2, 3)
    pulse = dataclasses.replace(p.sinc_kernel, kinds=("pulse",) * 2, sizes=(1, 1))
    st1 = dataclasses.replace(
        p.stage1,
        resize="keep",
        resize_scale=1.0,
        resize_mode="area",
        noise="gaussian",
        noise_sigma=(1e-6, 1e-6),
        poisson_scale=(),
        jpeg_quality=(100.0, 100.0),
    )
    st2 = dataclasses.replace(st1, resize="keep")  # second resize goes straight to 100x100
    p = dataclasses.replace(
        p,
        kernel1=pulse,
        second_blur=False,
        stage1=st1,
        stage2=st2,
        sinc_kernel=pulse,
        final_order="resize_first",
        final_resize_mode="area",
    )
    lq = degrade(gt, p, CFG)
    ref = torch.nn.functional.interpolate(gt, size=(100, 100), mode="area")
    mse = float(((lq - ref) ** 2).mean())
    assert mse < 1e-4  # > 40 dB (measured 3.5e-5: 8-bit rounding and the tint's chroma)


def test_mismatched_batch_is_refused(gt: torch.Tensor) -> None:
    with pytest.raises(
        ValueError,
        match=r"params were sampled for 3 x \(400, 400\), got a batch "
        r"of 2",
    ):
        degrade(gt, params(3, 0), CFG)


def test_paired_crop_aligns_lq_and_gt() -> None:
    lq = torch.arange(100 * 100, dtype=torch.float32).view(1, 1, 100, 100)
    gt = torch.arange(400 * 400, dtype=torch.float32).view(1, 1, 400, 400)
    lq_c, (gt_c,) = paired_crop(lq, (gt,), 7, 30, CFG)
    assert lq_c.shape[-1] == 64 and gt_c.shape[-1] == 256
    assert lq_c[0, 0, 0, 0] == 7 * 100 + 30
    assert gt_c[0, 0, 0, 0] == (7 * 4) * 400 + 30 * 4
    with pytest.raises(ValueError, match=r"\(40, 0\) \+ 64 outside the 100x100 LQ"):
        paired_crop(lq, (gt,), 40, 0, CFG)


def test_training_batch_crops_gt_and_its_usm_at_the_same_place(gt: torch.Tensor) -> None:
    p = params(2, 4)
    tb = make_training_batch(gt, p, CFG)
    t, lft = p.crop_top * 4, p.crop_left * 4
    torch.testing.assert_close(tb.gt, gt[..., t : t + 256, lft : lft + 256])
    torch.testing.assert_close(tb.gt_usm, usm_sharpen(gt)[..., t : t + 256, lft : lft + 256])


def test_lq_starts_from_the_sharpened_gt(gt: torch.Tensor) -> None:
    p = params(2, 9)
    tb = make_training_batch(gt, p, CFG)
    lq_usm = degrade(usm_sharpen(gt), p, CFG)
    t, lft = p.crop_top, p.crop_left
    torch.testing.assert_close(tb.lq, lq_usm[..., t : t + 64, lft : lft + 64])
    tb_plain = make_training_batch(gt, p, dataclasses.replace(CFG, gt_usm=False))
    assert not torch.equal(tb_plain.lq, tb.lq)


def ids(b: int, start: int) -> tuple[torch.Tensor, torch.Tensor]:
    v = torch.arange(start, start + b, dtype=torch.float32)
    return v.view(b, 1, 1, 1).expand(b, 3, 2, 2).clone(), v.view(b, 1, 1, 1).expand(
        b, 3, 8, 8
    ).clone()


def test_pool_fill_phase_returns_the_batch_unchanged() -> None:
    pool = PairPool(12)
    g = torch.Generator().manual_seed(0)
    for it in range(3):
        lq, gt = ids(4, 4 * it)
        out_lq, out_gt = pool.push_pop(lq, gt, generator=g)
        assert torch.equal(out_lq, lq) and torch.equal(out_gt, gt)
    assert pool.full


def test_pool_swap_phase_conserves_samples_and_keeps_pairs() -> None:
    pool = PairPool(12)
    g = torch.Generator().manual_seed(0)
    for it in range(3):
        pool.push_pop(*ids(4, 4 * it), generator=g)
    seen_out = []
    for it in range(3, 8):
        assert pool.lq is not None
        before = sorted(pool.lq[:, 0, 0, 0].tolist())
        lq, gt = ids(4, 4 * it)
        out_lq, out_gt = pool.push_pop(lq, gt, generator=g)
        after = sorted(pool.lq[:, 0, 0, 0].tolist())
        assert sorted(after + out_lq[:, 0, 0, 0].tolist()) == sorted(
            before + list(range(4 * it, 4 * it + 4))
        )
        torch.testing.assert_close(out_gt[:, :, 0, 0], out_lq[:, :, 0, 0])  # pairs stay together
        torch.testing.assert_close(pool.gt[:, 0, 0, 0], pool.lq[:, 0, 0, 0])
        seen_out += out_lq[:, 0, 0, 0].tolist()
    assert len(set(seen_out)) == len(seen_out)  # a sample leaves the pool once
    assert any(v < 12 for v in seen_out)  # old samples are mixed in


def test_pool_state_round_trip_continues_identically() -> None:
    a, b = PairPool(8), PairPool(8)
    ga = torch.Generator().manual_seed(1)
    for it in range(3):
        a.push_pop(*ids(4, 4 * it), generator=ga)
    b.load_state_dict(a.state_dict())
    gb = torch.Generator().manual_seed(0)
    gb.set_state(ga.get_state())
    out_a = a.push_pop(*ids(4, 100), generator=ga)
    out_b = b.push_pop(*ids(4, 100), generator=gb)
    assert torch.equal(out_a[0], out_b[0]) and torch.equal(out_a[1], out_b[1])
    with pytest.raises(ValueError, match="checkpoint pool size 8 != 12"):
        PairPool(12).load_state_dict(a.state_dict())


def test_pool_size_must_be_a_multiple_of_the_batch() -> None:
    with pytest.raises(ConfigError, match="queue_size: 180 is not divisible by the batch size 7"):
        PairPool(180).push_pop(*ids(7, 0), generator=torch.Generator())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_pipeline_keeps_other_dtypes(dtype: torch.dtype) -> None:
    gt = photo(1, seed=2).to(dtype)
    tb = make_training_batch(gt, params(1, 21), CFG)
    assert tb.lq.dtype == dtype and tb.gt.dtype == dtype and tb.lq.shape == (1, 3, 64, 64)
    assert tb.lq.min() >= 0 and tb.lq.max() <= 1
    ref = make_training_batch(gt.float(), params(1, 21), CFG).lq
    assert (tb.lq.float() - ref).abs().mean() < 0.06  # same picture, noise drawn in another dtype


def test_queue_size_zero_means_no_pool() -> None:
    assert DegradationConfig(queue_size=0).queue_size == 0
    with pytest.raises(ConfigError, match="queue_size: -1 must be >= 0"):
        DegradationConfig(queue_size=-1)


def literal_feed_data(gt: torch.Tensor, p: DegradationParams, cfg: DegradationConfig):
    """Spec §1.4 steps 1-9 written out with the individual ops (the reference for the glue)."""
    from resrgan.degradation.filter import filter2d
    from resrgan.degradation.jpeg import jpeg_compress
    from resrgan.degradation.noise import add_gaussian_noise, add_poisson_noise, derived_seed
    from resrgan.degradation.resize import resize

    def noise(x, st):
        # sample i's noise from a generator seeded by (noise_seed, i); one gray map per stage
        gens = [
            torch.Generator().manual_seed(derived_seed(st.noise_seed, i)) for i in range(len(x))
        ]
        gray = torch.tensor(st.gray_noise)
        if st.noise == "gaussian":
            gmap = torch.randn(
                x.shape[-2:],
                generator=torch.Generator().manual_seed(derived_seed(st.noise_seed, "gray")),
            )
            return add_gaussian_noise(
                x, torch.tensor(st.noise_sigma), gray, generator=gens, gray_map=gmap
            )
        return add_poisson_noise(x, torch.tensor(st.poisson_scale), gray, generator=gens)

    s = cfg.scale
    ori_h, ori_w = gt.shape[-2:]
    out = filter2d(gt, p.kernel1.build(21))
    out = torch.nn.functional.interpolate(
        out, scale_factor=p.stage1.resize_scale, mode=p.stage1.resize_mode
    )
    out = noise(out, p.stage1)
    out = jpeg_compress(torch.clamp(out, 0, 1), torch.tensor(p.stage1.jpeg_quality))
    if p.second_blur:
        out = filter2d(out, p.kernel2.build(21))
    size2 = (int(ori_h / s * p.stage2.resize_scale), int(ori_w / s * p.stage2.resize_scale))
    out = resize(out, mode=p.stage2.resize_mode, size=size2)
    out = noise(out, p.stage2)
    q2 = torch.tensor(p.stage2.jpeg_quality)
    if p.final_order == "resize_first":
        out = resize(out, mode=p.final_resize_mode, size=(ori_h // s, ori_w // s))
        out = filter2d(out, p.sinc_kernel.build(21))
        out = jpeg_compress(torch.clamp(out, 0, 1), q2)
    else:
        out = jpeg_compress(torch.clamp(out, 0, 1), q2)
        out = resize(out, mode=p.final_resize_mode, size=(ori_h // s, ori_w // s))
        out = filter2d(out, p.sinc_kernel.build(21))
    return torch.clamp((out * 255.0).round(), 0, 255) / 255.0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_degrade_equals_the_literal_order_of_operations(seed: int) -> None:
    gt = photo(2, size=200, seed=seed)
    cfg = DegradationConfig(gt_size=128, crop_pad_size=200)
    p = sample_degradation(
        2, cfg, generator=torch.Generator().manual_seed(seed), gt_size_in=(200, 200)
    )
    ref = literal_feed_data(gt, p, cfg)
    out = degrade(gt, p, cfg)
    assert out.shape == ref.shape == (2, 3, 50, 50)
    # identical up to a rare 1/255 step where float rounding straddles a .5
    assert (out - ref).abs().max() <= 1 / 255 + 1e-6
    assert (out != ref).float().mean() < 0.01


def test_resrgan_degrade_is_the_function_whatever_the_import_order() -> None:
    """The package is ``resrgan.degradation``: importing it never rebinds ``resrgan.degrade``."""
    import inspect

    import resrgan
    import resrgan.degradation.params  # noqa: F401

    gt = photo(1, size=200, seed=4)
    cfg = DegradationConfig(gt_size=128, crop_pad_size=200)
    p = sample_degradation(
        1, cfg, generator=torch.Generator().manual_seed(4), gt_size_in=(200, 200)
    )
    assert resrgan.degrade is degrade and inspect.isfunction(resrgan.degrade)
    assert inspect.ismodule(resrgan.degradation) and not callable(resrgan.degradation)
    assert torch.equal(resrgan.degrade(gt, p, cfg), degrade(gt, p, cfg))


@pytest.mark.parametrize("seed", [0, 5])
def test_chunking_does_not_change_the_batch(seed: int) -> None:
    """The batch is worked through in chunks; every chunking gives the same bytes."""
    gt = photo(3, size=200, seed=seed)
    cfg = DegradationConfig(gt_size=128, crop_pad_size=200)
    p = sample_degradation(
        3, cfg, generator=torch.Generator().manual_seed(seed), gt_size_in=(200, 200)
    )
    whole = make_training_batch(gt, p, cfg, chunk=3)
    for chunk in (1, 2):
        part = make_training_batch(gt, p, cfg, chunk=chunk)
        assert torch.equal(part.lq, whole.lq)
        assert torch.equal(part.gt_usm, whole.gt_usm) and torch.equal(part.gt, whole.gt)
    with pytest.raises(ValueError, match="chunk must be >= 1"):
        degrade(gt, p, cfg, chunk=0)


def test_sample_threads_change_no_value_and_no_thread_setting() -> None:
    """On CPU the chunks run on single-threaded worker threads; the bytes are those of the
    serial run, and the caller's torch thread settings are left as they were."""
    import threading

    from resrgan.degradation.executor import SampleThreads, Serial

    gt = photo(4, size=200, seed=7)
    cfg = DegradationConfig(gt_size=128, crop_pad_size=200)
    p = sample_degradation(
        4, cfg, generator=torch.Generator().manual_seed(7), gt_size_in=(200, 200)
    )
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with SampleThreads(2) as ex:
            pooled = make_training_batch(gt, p, cfg, chunk=1, executor=ex)  # 4 chunks, 2 threads
            assert torch.get_num_threads() == 2
            seen: list[int] = []
            t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
            t.start()
            t.join()
            assert seen == [2]  # a thread started afterwards gets the process default back
            assert ex.map(lambda _: torch.get_num_threads(), range(4)) == [1, 1, 1, 1]
        torch.set_num_threads(1)
        serial = make_training_batch(gt, p, cfg, chunk=1, executor=Serial())
    finally:
        torch.set_num_threads(before)
    assert torch.equal(pooled.lq, serial.lq) and torch.equal(pooled.gt_usm, serial.gt_usm)


@pytest.mark.parametrize("seed", [3, 6])
def test_cpu_bytes_do_not_depend_on_the_thread_count(seed: int) -> None:
    """Every op runs single-threaded inside a chunk (torch's CPU kernels can differ in the last
    bit with the thread count), so one thread and two give the same LQ."""
    gt = photo(3, size=200, seed=seed)
    cfg = DegradationConfig(gt_size=128, crop_pad_size=200)
    p = sample_degradation(
        3, cfg, generator=torch.Generator().manual_seed(seed), gt_size_in=(200, 200)
    )
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = degrade(gt, p, cfg)
        torch.set_num_threads(2)
        two = degrade(gt, p, cfg)
        whole = degrade(gt, p, cfg, chunk=3)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two) and torch.equal(one, whole)


def test_a_forked_child_degrades_with_its_own_threads() -> None:
    """No pool outlives a call, so a forked child (a DataLoader worker) starts clean and runs
    its own sample threads; it sets torch to one thread first, as DataLoader workers do (OpenMP
    is not fork-safe)."""
    import multiprocessing as mp

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        here = _child_degrade()  # the parent has used (and closed) worker threads
        with mp.get_context("fork").Pool(1) as pool:
            there = pool.apply(_child_degrade, ())
    finally:
        torch.set_num_threads(before)
    assert torch.equal(here, there)


def _child_degrade() -> torch.Tensor:
    from resrgan.degradation.executor import SampleThreads

    torch.set_num_threads(1)
    gt = photo(2, size=200, seed=8)
    cfg = DegradationConfig(gt_size=128, crop_pad_size=200)
    p = sample_degradation(
        2, cfg, generator=torch.Generator().manual_seed(8), gt_size_in=(200, 200)
    )
    with SampleThreads(2) as ex:
        return degrade(gt, p, cfg, chunk=1, executor=ex)


def literal_first_order(gt: torch.Tensor, p: DegradationParams, cfg: DegradationConfig):
    """The classical model, y = JPEG((x * k1) resized to the LQ size + n), with stage 1's draws."""
    from resrgan.degradation.filter import filter2d
    from resrgan.degradation.jpeg import jpeg_compress
    from resrgan.degradation.noise import add_gaussian_noise, add_poisson_noise, derived_seed

    st = p.stage1
    s = cfg.scale
    out = filter2d(gt, p.kernel1.build(21))
    out = torch.nn.functional.interpolate(
        out, size=(gt.shape[-2] // s, gt.shape[-1] // s), mode=st.resize_mode
    )
    gens = [torch.Generator().manual_seed(derived_seed(st.noise_seed, i)) for i in range(len(out))]
    gray = torch.tensor(st.gray_noise)
    if st.noise == "gaussian":
        gseed = derived_seed(st.noise_seed, "gray")
        gmap = torch.randn(out.shape[-2:], generator=torch.Generator().manual_seed(gseed))
        out = add_gaussian_noise(
            out, torch.tensor(st.noise_sigma), gray, generator=gens, gray_map=gmap
        )
    else:
        out = add_poisson_noise(out, torch.tensor(st.poisson_scale), gray, generator=gens)
    out = jpeg_compress(torch.clamp(out, 0, 1), torch.tensor(st.jpeg_quality))
    return torch.clamp((out * 255.0).round(), 0, 255) / 255.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_first_order_is_the_classical_model_with_the_first_stage_draws(seed: int) -> None:
    gt = photo(2, size=200, seed=seed)
    cfg = DegradationConfig(gt_size=128, crop_pad_size=200, order="first")
    p = sample_degradation(
        2, cfg, generator=torch.Generator().manual_seed(seed), gt_size_in=(200, 200)
    )
    out = degrade(gt, p, cfg)
    ref = literal_first_order(gt, p, cfg)
    assert out.shape == ref.shape == (2, 3, 50, 50)
    assert (out - ref).abs().max() <= 1 / 255 + 1e-6
    assert (out != ref).float().mean() < 0.01
    second = degrade(gt, p, dataclasses.replace(cfg, order="second"))
    assert (out - second).abs().mean() > 0.005  # the second order is not taken


def test_bicubic_order_is_antialiased_bicubic_of_the_sharpened_gt() -> None:
    gt = photo(2, size=200, seed=5)
    cfg = DegradationConfig(gt_size=128, crop_pad_size=200, order="bicubic")
    p = sample_degradation(
        2, cfg, generator=torch.Generator().manual_seed(0), gt_size_in=(200, 200)
    )
    tb = make_training_batch(gt, p, cfg)
    small = torch.nn.functional.interpolate(
        usm_sharpen(gt), size=(50, 50), mode="bicubic", antialias=True
    )
    ref = (small.clamp(0, 1) * 255).round() / 255
    t, l = p.crop_top, p.crop_left
    torch.testing.assert_close(tb.lq, ref[..., t : t + 32, l : l + 32], atol=1e-6, rtol=0)
    # a ramp keeps its mean and a constant stays exactly constant
    flat = torch.full((1, 3, 200, 200), 0.4)
    pf = sample_degradation(
        1, cfg, generator=torch.Generator().manual_seed(0), gt_size_in=(200, 200)
    )
    assert (degrade(flat, pf, cfg) == round(0.4 * 255) / 255).all()


def test_an_unknown_order_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"degradation.order: 'third' is not one of \['second'"):
        DegradationConfig(order="third")
