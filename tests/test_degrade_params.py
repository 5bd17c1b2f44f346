"""Sampling (spec §1.2, §1.4): ranges, probabilities within binomial bounds, replay, config."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
import torch

from resrgan.config import from_dict, load_config
from resrgan.degradation.config import DegradationConfig, OrderConfig
from resrgan.degradation.params import DegradationParams, sample_degradation
from resrgan.errors import ConfigError

CFG = DegradationConfig()
N_BATCHES = 1500


@pytest.fixture(scope="module")
def draws() -> list[DegradationParams]:
    g = torch.Generator().manual_seed(1234)
    return [sample_degradation(12, CFG, generator=g) for _ in range(N_BATCHES)]


def within(count: int, n: int, p: float, z: float = 4.5) -> bool:
    """Binomial bound: |count - n p| <= z sqrt(n p (1 - p))."""
    return abs(count - n * p) <= z * math.sqrt(n * p * (1 - p)) + 1e-9


def test_official_defaults() -> None:
    c = CFG
    assert (c.resize_prob, c.resize_range, c.gaussian_noise_prob) == (
        (0.2, 0.7, 0.1),
        (0.15, 1.5),
        0.5,
    )
    assert (c.noise_range, c.poisson_scale_range, c.gray_noise_prob) == ((1, 30), (0.05, 3), 0.4)
    assert (c.jpeg_range, c.second_blur_prob, c.resize_prob2) == ((30, 95), 0.8, (0.3, 0.4, 0.3))
    assert (c.resize_range2, c.noise_range2, c.poisson_scale_range2) == (
        (0.3, 1.2),
        (1, 25),
        (0.05, 2.5),
    )
    assert c.kernel_prob == (0.45, 0.25, 0.12, 0.03, 0.12, 0.03) == c.kernel_prob2
    assert (c.sinc_prob, c.blur_sigma, c.blur_sigma2, c.final_sinc_prob) == (
        0.1,
        (0.2, 3),
        (0.2, 1.5),
        0.8,
    )
    assert (c.betag_range, c.betap_range, c.kernel_range) == (
        (0.5, 4),
        (1, 2),
        (7, 9, 11, 13, 15, 17, 19, 21),
    )
    assert (c.gt_size, c.scale, c.crop_pad_size, c.queue_size, c.gt_usm) == (256, 4, 400, 180, True)
    hash(c)  # frozen and hashable


def test_config_loads_from_yaml_with_overrides(tmp_path) -> None:
    p = tmp_path / "d.yaml"
    p.write_text("scale: 2\nresize_prob: [0.3, 0.4, 0.3]\n", encoding="utf-8")
    c = load_config(DegradationConfig, p, ["noise_range=[2, 20]"])
    assert (c.scale, c.resize_prob, c.noise_range) == (2, (0.3, 0.4, 0.3), (2.0, 20.0))
    with pytest.raises(ConfigError, match="unknown config key 'nois_range' .*did you mean"):
        from_dict(DegradationConfig, {"nois_range": [1, 2]})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resize_prob": (0.5, 0.6, 0.1)}, r"resize_prob: \[0.5, 0.6, 0.1\] must be non-negative"),
        ({"kernel_list": ("iso", "box"), "kernel_prob": (0.5, 0.5)}, "unknown kernel type 'box'"),
        ({"kernel_prob": (1.0,)}, "1 probabilities for 6 kernel types"),
        ({"gt_size": 255}, "gt_size: 255 is not divisible by scale 4"),
        ({"noise_range": (30.0, 1.0)}, r"noise_range: \[30.0, 1.0\] must be \[lo, hi\]"),
        ({"resize_range2": (1.1, 1.2)}, "must contain 1"),
        ({"second_blur_prob": 1.5}, "second_blur_prob: 1.5 is not a probability"),
    ],
)
def test_invalid_config_values_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_dict(DegradationConfig, kwargs, where="degradation")


def test_config_is_nested_by_order_and_reads_flat_names() -> None:
    c = CFG
    assert isinstance(c.first, OrderConfig) and isinstance(c.second, OrderConfig)
    assert (c.first.blur_sigma, c.second.blur_sigma) == ((0.2, 3.0), (0.2, 1.5))
    assert (c.first.blur_prob, c.second.blur_prob, c.final.sinc_prob) == (1.0, 0.8, 0.8)
    assert c.second.jpeg_range == (30.0, 95.0)  # upstream jpeg_range2: the final stage's JPEG
    # the official flat names read the nested values
    assert (c.blur_sigma2, c.second_blur_prob, c.final_sinc_prob) == ((0.2, 1.5), 0.8, 0.8)
    with pytest.raises(AttributeError, match="no attribute 'blur_sigma3'"):
        _ = c.blur_sigma3


def test_flat_keys_map_to_their_order() -> None:
    c = from_dict(
        DegradationConfig,
        {"noise_range": [2, 20], "noise_range2": [3, 9], "second_blur_prob": 0.5,
         "final_sinc_prob": 0.25, "blur_kernel_size2": 23},
    )  # fmt: skip
    assert (c.first.noise_range, c.second.noise_range) == ((2.0, 20.0), (3.0, 9.0))
    assert (c.second.blur_prob, c.final.sinc_prob, c.second.blur_kernel_size) == (0.5, 0.25, 23)
    assert c.first.blur_kernel_size == 21 and c.first.noise_range != c.second.noise_range


def test_files_hold_the_official_flat_keys_and_round_trip(tmp_path) -> None:
    import yaml

    from resrgan.config import to_dict

    c = from_dict(DegradationConfig, {"sinc_prob2": 0.3, "jpeg_range": [40, 90], "scale": 2})
    flat = to_dict(c)
    official = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "configs" / "degradation_x4plus.yaml").read_text()
    )
    assert set(official) <= set(flat) and "first" not in flat and "second" not in flat
    assert (flat["sinc_prob2"], flat["second_blur_prob"]) == (0.3, 0.8)
    assert flat["jpeg_range"] == [40, 90]
    path = tmp_path / "written.yaml"
    path.write_text(yaml.safe_dump(flat), encoding="utf-8")
    assert load_config(DegradationConfig, path) == c


def test_flat_names_work_in_set_overrides() -> None:
    c = load_config(DegradationConfig, None, ["blur_sigma2=[0.3, 1.0]", "second_blur_prob=0.1"])
    assert (c.second.blur_sigma, c.second.blur_prob) == ((0.3, 1.0), 0.1)


def test_the_first_order_always_blurs() -> None:
    with pytest.raises(ConfigError, match="first.blur_prob: 0.5; the first order always blurs"):
        DegradationConfig(first=OrderConfig(blur_prob=0.5))


def test_every_parameter_in_range(draws: list[DegradationParams]) -> None:
    c = CFG
    for p in draws[:300]:
        for (
            kb,
            sig,
        ) in ((p.kernel1, c.blur_sigma), (p.kernel2, c.blur_sigma2)):
            for i, kind in enumerate(kb.kinds):
                assert kb.sizes[i] in c.kernel_range
                if kind == "sinc":
                    lo = math.pi / 3 if kb.sizes[i] < 13 else math.pi / 5
                    assert lo <= kb.omega_c[i] <= math.pi
                    continue
                assert sig[0] <= kb.sigma_x[i] <= sig[1] and sig[0] <= kb.sigma_y[i] <= sig[1]
                assert -math.pi <= kb.theta[i] <= math.pi
                if kind.endswith("_iso") or kind == "iso":
                    assert kb.sigma_x[i] == kb.sigma_y[i] and kb.theta[i] == 0
                if kind.startswith("generalized"):
                    assert c.betag_range[0] <= kb.beta[i] <= c.betag_range[1]
                elif kind.startswith("plateau"):
                    assert c.betap_range[0] <= kb.beta[i] <= c.betap_range[1]
                else:
                    assert kb.beta[i] == 1.0
        for i, kind in enumerate(p.sinc_kernel.kinds):
            if kind == "sinc":
                assert math.pi / 3 <= p.sinc_kernel.omega_c[i] <= math.pi
        for st, rr, nr, pr, jr in (
            (p.stage1, c.resize_range, c.noise_range, c.poisson_scale_range, c.jpeg_range),
            (p.stage2, c.resize_range2, c.noise_range2, c.poisson_scale_range2, c.jpeg_range2),
        ):
            lo, hi = {"up": (1, rr[1]), "down": (rr[0], 1), "keep": (1, 1)}[st.resize]
            assert lo <= st.resize_scale <= hi
            assert all(nr[0] <= s <= nr[1] for s in st.noise_sigma)
            assert all(pr[0] <= s <= pr[1] for s in st.poisson_scale)
            assert len(st.noise_sigma) + len(st.poisson_scale) == 12
            assert all(jr[0] <= q <= jr[1] for q in st.jpeg_quality)
        assert 0 <= p.crop_top <= 100 - 64 and 0 <= p.crop_left <= 100 - 64


def test_per_sample_shares(draws: list[DegradationParams]) -> None:
    for attr, sinc_p in (("kernel1", CFG.sinc_prob), ("kernel2", CFG.sinc_prob2)):
        kinds = Counter(k for p in draws for k in getattr(p, attr).kinds)
        n = 12 * len(draws)
        assert within(kinds["sinc"], n, sinc_p)
        for name, prob in zip(CFG.kernel_list, CFG.kernel_prob, strict=True):
            assert within(kinds[name], n, (1 - sinc_p) * prob), (attr, name, kinds[name])
        sizes = Counter(s for p in draws for s in getattr(p, attr).sizes)
        assert all(within(sizes[k], n, 1 / 8) for k in CFG.kernel_range)
    final = Counter(k for p in draws for k in p.sinc_kernel.kinds)
    assert within(final["sinc"], 12 * len(draws), CFG.final_sinc_prob)
    gray = sum(g for p in draws for g in p.stage1.gray_noise)
    assert within(gray, 12 * len(draws), CFG.gray_noise_prob)
    # half of the plateau betas are exactly 1 (U(1, 1) branch)
    betas = [
        b
        for p in draws
        for k, b in zip(p.kernel1.kinds, p.kernel1.beta, strict=True)
        if k.startswith("plateau")
    ]
    assert within(sum(b == 1.0 for b in betas), len(betas), 0.5)
    gbetas = [
        b
        for p in draws
        for k, b in zip(p.kernel1.kinds, p.kernel1.beta, strict=True)
        if k.startswith("generalized")
    ]
    assert within(sum(b < 1.0 for b in gbetas), len(gbetas), 0.5)


def test_per_batch_shares(draws: list[DegradationParams]) -> None:
    n = len(draws)
    for st, probs in (("stage1", CFG.resize_prob), ("stage2", CFG.resize_prob2)):
        resize = Counter(getattr(p, st).resize for p in draws)
        for name, prob in zip(("up", "down", "keep"), probs, strict=True):
            assert within(resize[name], n, prob), (st, name, resize)
        modes = Counter(getattr(p, st).resize_mode for p in draws)
        assert all(within(modes[m], n, 1 / 3) for m in ("area", "bilinear", "bicubic"))
        noise = Counter(getattr(p, st).noise for p in draws)
        assert within(noise["gaussian"], n, 0.5)
    assert within(sum(p.second_blur for p in draws), n, CFG.second_blur_prob)
    assert within(sum(p.final_order == "resize_first" for p in draws), n, 0.5)
    final_modes = Counter(p.final_resize_mode for p in draws)
    assert all(within(final_modes[m], n, 1 / 3) for m in ("area", "bilinear", "bicubic"))


def test_per_sample_values_vary_within_a_batch_and_batch_values_do_not(
    draws: list[DegradationParams],
) -> None:
    p = draws[0]
    assert len(set(p.stage1.jpeg_quality)) == 12
    assert len(set(p.kernel1.sigma_x)) > 1
    assert isinstance(p.stage1.resize_scale, float) and isinstance(p.second_blur, bool)


def test_same_seed_same_params_and_json_round_trip() -> None:
    a = sample_degradation(4, CFG, generator=torch.Generator().manual_seed(7))
    b = sample_degradation(4, CFG, generator=torch.Generator().manual_seed(7))
    c = sample_degradation(4, CFG, generator=torch.Generator().manual_seed(8))
    assert a == b and a != c
    back = DegradationParams.from_dict(json.loads(json.dumps(a.to_dict())))
    assert back == a
    one = a.sample_dict(2)
    assert one["stage1"]["jpeg_quality"] == a.stage1.jpeg_quality[2]
    assert one["kernel1"]["kind"] == a.kernel1.kinds[2]
    assert one["kernel1"]["size"] == a.kernel1.sizes[2]
    assert one["final_order"] == a.final_order
    with pytest.raises(ConfigError, match="unknown config key 'params.bogus'"):
        DegradationParams.from_dict({**a.to_dict(), "bogus": 1})


def test_too_small_gt_is_refused() -> None:
    with pytest.raises(ConfigError, match="gives an LQ of 50x100, smaller than the LQ patch 64"):
        sample_degradation(2, CFG, generator=torch.Generator(), gt_size_in=(200, 400))


def test_shipped_yaml_equals_the_defaults() -> None:
    path = Path(__file__).resolve().parents[1] / "configs" / "degradation_x4plus.yaml"
    assert load_config(DegradationConfig, path) == DegradationConfig()
