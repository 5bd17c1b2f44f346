"""Tile plans: cores partition the image, blend weights sum to one, band assembly is exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from resrgan.infer.tiling import (
    BandAssembler,
    axis_spans,
    axis_weights,
    computed_fraction,
    plan_tiles,
    reflect_indices,
)


@given(
    length=st.integers(1, 300),
    tile=st.integers(0, 128),
    tile_pad=st.integers(0, 20),
    overlap=st.integers(0, 32),
)
def test_cores_partition_the_axis_and_context_is_clipped(
    length: int, tile: int, tile_pad: int, overlap: int
) -> None:
    spans = axis_spans(length, tile, tile_pad=tile_pad, overlap=overlap)
    assert spans[0].core_start == 0 and spans[-1].core_stop == length
    for a, b in zip(spans[:-1], spans[1:], strict=True):
        assert a.core_stop == b.core_start
    for s in spans:
        if tile > 0:
            assert s.core_stop - s.core_start <= tile
        assert 0 <= s.start <= s.support_start <= s.core_start < s.core_stop
        assert s.core_stop <= s.support_stop <= s.stop <= length
        assert s.start == max(0, s.support_start - tile_pad)
        assert s.stop == min(length, s.support_stop + tile_pad)


@given(
    blocks=st.integers(1, 80),
    tile=st.integers(0, 128),
    tile_pad=st.integers(0, 20),
    overlap=st.integers(0, 32),
    multiple=st.sampled_from([2, 4, 8, 16]),
)
def test_spans_grow_to_a_multiple_with_more_context_only(
    blocks: int, tile: int, tile_pad: int, overlap: int, multiple: int
) -> None:
    """Rounded spans keep their cores and supports (the blend is unchanged), only gain context
    (after first), stay inside the axis, and are multiples whenever the axis length is one."""
    for length in (blocks * multiple, blocks * multiple + 1):
        plain = axis_spans(length, tile, tile_pad=tile_pad, overlap=overlap)
        spans = axis_spans(length, tile, tile_pad=tile_pad, overlap=overlap, multiple=multiple)
        for p, s in zip(plain, spans, strict=True):
            assert (s.core_start, s.core_stop, s.support_start, s.support_stop) == (
                p.core_start, p.core_stop, p.support_start, p.support_stop,
            )  # fmt: skip
            assert 0 <= s.start <= p.start and p.stop <= s.stop <= length
            assert s.size - p.size < multiple
            assert s.start == p.start or s.stop == length  # grown after first
            if length % multiple == 0:
                assert s.size % multiple == 0
            else:
                assert s.size % multiple == 0 or (s.start, s.stop) == (0, length)


@given(
    length=st.integers(1, 200),
    tile=st.integers(1, 96),
    overlap=st.integers(0, 40),
    scale=st.sampled_from([1, 2, 4]),
)
def test_blend_weights_sum_to_one_everywhere(
    length: int, tile: int, overlap: int, scale: int
) -> None:
    spans = axis_spans(length, tile, tile_pad=3, overlap=overlap)
    total = np.zeros(length * scale, dtype=np.float64)
    for s in spans:
        w = axis_weights(s, scale)
        assert w.shape == ((s.support_stop - s.support_start) * scale,)
        assert np.all(w > 0) and np.all(w <= 1)
        total[s.support_start * scale : s.support_stop * scale] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_untiled_plan_is_one_tile_with_no_extra_pixels() -> None:
    plan = plan_tiles(37, 53, tile=0, tile_pad=10, overlap=24)
    assert plan.num_tiles == 1
    assert plan.computed_pixels == 37 * 53
    assert plan_tiles(37, 53, tile=64).num_tiles == 1  # tile larger than the image


def test_computed_fraction_closed_form() -> None:
    # 128 px, tile 64: spans [0, 64 + 24 + 10) and [64 - 24 - 10, 128) -> 98 + 98 per axis
    assert computed_fraction(128, 128, tile=64, tile_pad=10, overlap=24) == pytest.approx(
        (196 / 128) ** 2
    )
    # the original hard crop with 10 px context: 74 + 74 per axis
    assert computed_fraction(128, 128, tile=64, tile_pad=10, overlap=0) == pytest.approx(
        (148 / 128) ** 2
    )


def test_overlap_is_limited_to_half_the_smallest_core() -> None:
    spans = axis_spans(100, 40, tile_pad=0, overlap=50)  # cores 33/34/33 -> half-width 16
    assert [s.blend_after for s in spans] == [16, 16, 0]
    assert [s.blend_before for s in spans] == [0, 16, 16]


@pytest.mark.parametrize("length,pad", [(7, 3), (12, 2), (5, 4), (2, 1)])
def test_reflect_indices_match_torch_reflect_pad(length: int, pad: int) -> None:
    x = torch.arange(length, dtype=torch.float32).view(1, 1, length)
    expect = F.pad(x, (0, pad), mode="reflect").view(-1).long().numpy()
    np.testing.assert_array_equal(reflect_indices(0, length + pad, length), expect)


def test_reflect_indices_keep_bouncing_and_handle_length_one() -> None:
    np.testing.assert_array_equal(reflect_indices(0, 9, 3), [0, 1, 2, 1, 0, 1, 2, 1, 0])
    np.testing.assert_array_equal(reflect_indices(0, 4, 1), [0, 0, 0, 0])


def _assemble(img: np.ndarray, tile: int, tile_pad: int, overlap: int, scale: int, net):  # noqa: ANN001, ANN202
    """Run ``net`` (C,h,w float -> C,h*s,w*s) tile by tile through BandAssembler."""
    c, h, w = img.shape
    plan = plan_tiles(h, w, tile=tile, tile_pad=tile_pad, overlap=overlap)
    out = np.full((c, h * scale, w * scale), np.nan, dtype=np.float32)
    seen: list[int] = []

    def sink(row0: int, band: np.ndarray) -> None:
        seen.append(row0)
        assert np.all(np.isnan(out[:, row0 : row0 + band.shape[1]])), "row emitted twice"
        out[:, row0 : row0 + band.shape[1]] = band

    asm = BandAssembler(plan, scale, c, sink)
    for iy, ys in enumerate(plan.ys):
        asm.begin_row(iy)
        for ix, xs in enumerate(plan.xs):
            asm.add(ix, net(img[:, ys.start : ys.stop, xs.start : xs.stop]))
        asm.end_row()
    assert seen == sorted(seen)
    return out, plan


@pytest.mark.parametrize("tile,overlap", [(16, 0), (16, 4), (11, 24), (40, 8)])
def test_band_assembly_of_pointwise_upscale_is_exact(tile: int, overlap: int) -> None:
    img = np.random.default_rng(0).random((3, 45, 38), dtype=np.float32)

    def nearest(x: np.ndarray) -> np.ndarray:
        return x.repeat(3, axis=1).repeat(3, axis=2) * 2.0 - 0.5

    out, plan = _assemble(img, tile, 2, overlap, 3, nearest)
    assert plan.num_tiles > 1
    np.testing.assert_allclose(out, nearest(img), atol=2e-6)


def test_band_assembly_equals_untiled_conv_when_context_covers_receptive_field() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 3 * 4, 5, padding=2)  # receptive field radius 2 <= tile_pad

    def net(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            y = F.pixel_shuffle(conv(torch.from_numpy(np.ascontiguousarray(x))[None]), 2)
        return y[0].numpy()

    img = np.random.default_rng(1).random((3, 50, 61), dtype=np.float32)
    ref = net(img)
    for overlap in (0, 6):
        out, plan = _assemble(img, 16, 2, overlap, 2, net)
        assert plan.num_tiles == 16
        np.testing.assert_allclose(out, ref, atol=1e-6)


def test_band_assembler_rejects_wrong_tile_shape_and_order() -> None:
    plan = plan_tiles(20, 20, tile=10, tile_pad=2, overlap=2)
    asm = BandAssembler(plan, 2, 3, lambda r, b: None)
    with pytest.raises(ValueError, match="expected 0, got 1"):
        asm.begin_row(1)
    asm.begin_row(0)
    with pytest.raises(ValueError, match=r"tile \(0, 0\) output shape"):
        asm.add(0, np.zeros((3, 5, 5), np.float32))
