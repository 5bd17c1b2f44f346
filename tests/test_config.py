"""The typed config loader: coercion, overrides, unknown keys with a did-you-mean."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from resrgan.config import apply_overrides, from_dict, load_config, parse_override, to_dict
from resrgan.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    iters: int = 10
    use_ema: bool = True
    probs: tuple[float, ...] = (0.2, 0.7, 0.1)
    path: str | None = None
    optim: Inner = field(default_factory=Inner)


def test_defaults_and_nested_coercion() -> None:
    cfg = from_dict(Outer, {"iters": "20", "optim": {"lr": "2e-4", "betas": [0.5, 0.9]}})
    assert cfg.iters == 20 and cfg.optim.lr == 2e-4 and cfg.optim.betas == (0.5, 0.9)
    assert cfg.probs == (0.2, 0.7, 0.1) and cfg.path is None


def test_unknown_key_suggests_the_closest_name() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown config key 'optim.lrr' \(did you mean 'lr'\?\)"
    ):
        from_dict(Outer, {"optim": {"lrr": 1}})


def test_wrong_type_names_the_field_and_value() -> None:
    with pytest.raises(ConfigError, match=r"iters: expected an integer, got 'ten'"):
        from_dict(Outer, {"iters": "ten"})
    with pytest.raises(ConfigError, match=r"optim.betas: expected 2 values"):
        from_dict(Outer, {"optim": {"betas": [1, 2, 3]}})


def test_overrides_parse_yaml_scalars_and_lists() -> None:
    assert parse_override("optim.lr=1e-4") == (["optim", "lr"], 1e-4)
    assert parse_override("probs=[0.1, 0.2]") == (["probs"], [0.1, 0.2])
    assert parse_override("use_ema=false") == (["use_ema"], False)
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_override("iters")


def test_load_config_from_yaml_with_overrides(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("name: run\noptim:\n  lr: 0.001\n")
    cfg = load_config(Outer, p, ["optim.lr=0.5", "iters=3"])
    assert (cfg.name, cfg.iters, cfg.optim.lr) == ("run", 3, 0.5)
    assert to_dict(cfg)["optim"] == {"lr": 0.5, "betas": [0.9, 0.99]}


def test_bad_yaml_error_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML"):
        load_config(Outer, p)


def test_apply_overrides_does_not_mutate_input() -> None:
    data = {"optim": {"lr": 1}}
    out = apply_overrides(data, ["optim.lr=2"])
    assert data == {"optim": {"lr": 1}} and out == {"optim": {"lr": 2}}
