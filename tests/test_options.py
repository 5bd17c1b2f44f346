"""One place checks the upscaling options: the Python API and the command line say the same thing,
each with its own spelling of the option."""

from __future__ import annotations

from pathlib import Path

import pytest

from resrgan.errors import UsageError
from resrgan.infer.options import check_options, check_outscale

CLI = {"tile": "-t/--tile", "tile_pad": "--tile_pad", "outscale": "-s/--outscale"}


@pytest.mark.parametrize(
    ("kwargs", "api", "cli"),
    [
        ({"tile": 4}, "tile: 4 is too small", "-t/--tile: 4 is too small"),
        ({"tile": -3}, "tile: -3 is not a size", "-t/--tile: -3 is not a size"),
        ({"tile_pad": -1}, "tile_pad: -1 is negative", "--tile_pad: -1 is negative"),
        ({"outscale": 0.0}, "outscale: 0.0 is not a positive", "-s/--outscale: 0.0 is not a"),
    ],
)
def test_messages_name_the_option_as_the_caller_spells_it(kwargs: dict, api: str, cli: str) -> None:
    with pytest.raises(UsageError) as plain:
        check_options(**kwargs)
    with pytest.raises(UsageError) as flags:
        check_options(**kwargs, labels=CLI)
    assert str(plain.value).startswith(api)
    assert str(flags.value).startswith(cli)
    assert str(plain.value).split(": ", 1)[1] == str(flags.value).split(": ", 1)[1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tile": True}, "tile: True is not a size"),
        ({"pre_pad": "3"}, "pre_pad: '3' is not a whole number; use 0 or more"),
        ({"denoise_strength": float("nan")}, "denoise_strength: nan is outside [0, 1]"),
        ({"gpu_id": -1}, "gpu_id: -1 is negative; use 0, 1, ..."),
        ({"alpha_upsampler": "nearest"}, "alpha_upsampler: 'nearest' is not 'model'"),
    ],
)
def test_bad_values_are_refused_with_a_message(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError) as e:
        check_options(**kwargs)
    assert str(e.value).startswith(message)


def test_good_values_and_unset_options_pass() -> None:
    check_options()
    check_options(tile="auto", tile_pad=0, pre_pad=10, tile_overlap=0, denoise_strength=1,
                  alpha_upsampler="bicubic", gpu_id=0, outscale=3.5)  # fmt: skip
    check_options(tile=0)
    check_outscale(1)


def test_the_cli_refuses_a_too_small_tile_before_loading_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np
    from PIL import Image

    import resrgan.cli.upscale as cli
    from resrgan.cli import main

    def no_model(args: object) -> object:
        raise AssertionError("the model must not be loaded for a usage error")

    monkeypatch.setattr(cli, "_make_upscaler", no_model)
    src = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src)
    model = tmp_path / "w.pth"
    model.write_bytes(b"")  # exists: the check runs before anything reads it
    rc = main(["upscale", "-i", str(src), "-o", str(tmp_path / "o"), "-t", "4",
               "--model_path", str(model)])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["resrgan upscale: error: -t/--tile: 4 is too small; use at least 8, better 32 "
                   "or more (or 0 for no tiling)"]  # fmt: skip
