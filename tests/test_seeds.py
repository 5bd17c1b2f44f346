"""resrgan.seeds.derive_seed: the values are pinned (computed by the four functions it replaced:
train.distributed.derive_seed, data.paired._item_seed, degrade.noise.derived_seed and
data.hr.item_seed), so training streams, resumed runs and the degradation's same-bytes guarantees
do not move."""

from __future__ import annotations

import pytest

from resrgan.seeds import derive_seed


@pytest.mark.parametrize(
    ("parts", "value"),
    [
        ((0, "init"), 6661309355786447146),
        ((42, "degrade", 0, 1000), 8789167586520787245),
        ((7, "data-order", 3, 1), 1969992035969475447),
        (("paired", 0, 0, 0), 5824451585521797611),
        (("paired", 5, 2, 17), 1228121901389205927),
    ],
)
def test_sha256_seeds_of_the_training_streams_are_pinned(
    parts: tuple[object, ...], value: int
) -> None:
    assert derive_seed(*parts) == value


@pytest.mark.parametrize(
    ("parts", "value"),
    [
        ((123, 0), 8210467512897557325),
        ((123, 7), 5037396281126172736),
        ((0, "gray"), 8578500858784796244),
    ],
)
def test_blake2b_seeds_of_the_degradation_noise_are_pinned(
    parts: tuple[object, ...], value: int
) -> None:
    assert derive_seed(*parts, scheme="blake2b") == value


@pytest.mark.parametrize(
    ("parts", "value"),
    [
        ((0, 0, 0), 7070836379803831727),
        ((1, 2, 3), 2117812068465659317),
        ((0, -1, 0), 104812844613183750),
        ((9, 4, -1), 1924528833773818427),
    ],
)
def test_splitmix64_seeds_of_the_hr_crops_are_pinned(
    parts: tuple[int, int, int], value: int
) -> None:
    assert derive_seed(*parts, scheme="splitmix64") == value


@pytest.mark.parametrize("scheme", ["sha256", "blake2b", "splitmix64"])
def test_seeds_are_63_bit_and_differ_in_the_low_32_bits(scheme: str) -> None:
    seeds = [derive_seed(5, 0, i, scheme=scheme) for i in range(2000)]  # type: ignore[arg-type]
    assert all(0 <= s < 2**63 for s in seeds)
    assert len({s & 0xFFFFFFFF for s in seeds}) == len(seeds)  # CPU generators use the low 32 bits


def test_the_order_of_the_parts_matters() -> None:
    assert derive_seed(1, 2, 3) != derive_seed(1, 3, 2)
    assert derive_seed(1, 2, 3, scheme="splitmix64") != derive_seed(1, 3, 2, scheme="splitmix64")


def test_splitmix64_takes_exactly_three_integers() -> None:
    with pytest.raises(TypeError, match=r"splitmix64 seeds take \(seed, epoch, index\) integers"):
        derive_seed(1, "gray", 3, scheme="splitmix64")


def test_an_unknown_scheme_is_named() -> None:
    with pytest.raises(ValueError, match="scheme: 'md5' is not one of sha256, blake2b, splitmix64"):
        derive_seed(1, scheme="md5")  # type: ignore[arg-type]
