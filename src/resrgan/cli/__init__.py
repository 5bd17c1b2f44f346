"""Command-line entry point: ``resrgan SUBCOMMAND ...`` (also ``python -m resrgan``).

Each subcommand lives in its own module ``resrgan.cli.<module>`` exposing::

    HELP: str                                   # one line for ``resrgan --help``
    def add_arguments(parser) -> None           # argparse setup; must not import torch
    def run(args) -> int                        # the work; returns the exit code

Modules are imported lazily so that ``resrgan --help`` and start-up stay fast. Errors derived from
``ResrganError`` are printed as one line (no traceback) with their exit code: 2 for usage and config
errors, 1 for runtime failures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import typing
from collections.abc import Sequence

# subcommand -> module name under resrgan.cli
COMMANDS: dict[str, str] = {
    "upscale": "upscale",
    "models": "models",
    "convert-ncnn": "convert_ncnn",
    "degrade": "degrade",
    "train": "train",
    "evaluate": "evaluate",
    "niqe-fit": "niqe_fit",
    "export": "export",
    "video": "video",
    "serve": "serve",
    "plot": "plot",
}


def _load(module: str):  # type: ignore[no-untyped-def]
    try:
        return importlib.import_module(f"{__name__}.{module}")
    except ModuleNotFoundError as e:
        if e.name == f"{__name__}.{module}":
            return None
        raise


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``resrgan CMD: error: MESSAGE (see: ...)``), exit 2."""

    def error(self, message: str) -> typing.NoReturn:  # type: ignore[override]
        _print_err(f"{self.prog}: error: {message} (see: {self.prog} --help)")
        raise SystemExit(2)


def write_json_line(data: typing.Any) -> None:
    """One JSON record on stdout, written and flushed as a single string: with ``print`` a signal
    (Ctrl-C) between the text and its newline glued the next record onto the same line."""
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def _print_err(text: str) -> None:
    """Print one line to stderr even when it holds characters the terminal cannot encode."""
    enc = getattr(sys.stderr, "encoding", None) or "utf-8"
    print(text.encode(enc, "backslashreplace").decode(enc, "replace"), file=sys.stderr)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog="resrgan",
        description="Real-ESRGAN: upscale images, synthesize training pairs, train and evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"resrgan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        if only is not None and name != only:
            continue
        mod = _load(module)
        if mod is None:
            continue
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI in-process; returns the exit code (never calls sys.exit itself)."""
    from ..errors import ResrganError

    args_list = list(sys.argv[1:] if argv is None else argv)
    # Build only the requested subcommand's parser: keeps start-up cheap.
    first = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(first if first in COMMANDS else None)
    try:
        args = parser.parse_args(args_list)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2)
        return int(e.code or 0)
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args._run(args) or 0)
    except ResrganError as e:
        _print_err(f"resrgan {args.command}: error: {e}")
        return e.exit_code
    except KeyboardInterrupt:
        _print_err(f"resrgan {args.command}: interrupted")
        return 130
    except BrokenPipeError:  # e.g. `resrgan evaluate --json | head`: the reader left; stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def entry() -> None:
    """Console-script entry point. The process is ours: freed memory is kept for reuse
    (:mod:`resrgan.allocator`; large maps are otherwise faulted in anew layer after layer)."""
    from ..allocator import reuse_freed_memory

    reuse_freed_memory()
    sys.exit(main())
