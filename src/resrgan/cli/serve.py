"""``resrgan serve``: a local web page to upscale images (drop, compare, download).

Needs the ``web`` extra (``pip install "resrgan[web]"``: FastAPI, uvicorn, python-multipart). It
listens on 127.0.0.1 by default, so only this machine can reach it; any other ``--host`` prints a
warning, because the page has no login. See docs/web.md for the limits and the security model.
"""

from __future__ import annotations

import argparse
import math
import socket
import sys
import threading
from typing import Any

from ..errors import UsageError
from .upscale import _sigterm_as_interrupt

HELP = "a local web page: drop images, compare before/after, download (needs the web extra)"

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    a("--port", type=int, default=7860, help="port (default 7860)")
    a("--open", action="store_true", help="open the page in the default browser")
    a("--model", default=None, help="model selected when the page opens (see `resrgan models`)")
    a(
        "--device",
        action="append",
        default=None,
        help="device to run on, one worker each; repeat for several GPUs "
        "(default: every GPU, else the CPU)",
    )
    a(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "fp16", "bf16"),
        help="auto = fp16 on CUDA, fp32 on CPU",
    )
    a(
        "--max-upload-mb",
        type=float,
        default=50.0,
        help="largest upload (one request, all its files) in MB (default 50)",
    )
    a(
        "--max-pixels",
        type=int,
        default=4096 * 4096,
        help="largest input image in pixels, checked from the header before decoding "
        "(default 16777216 = 4096x4096)",
    )
    a("--max-files", type=int, default=20, help="most files in one upload (default 20)")
    a("--queue-size", type=int, default=32, help="most images waiting (default 32); then 503")
    a(
        "--request-timeout",
        type=float,
        default=120.0,
        help="seconds an upload may take to arrive (default 120)",
    )
    a(
        "--job-timeout",
        type=float,
        default=600.0,
        help="seconds one image may take to upscale (default 600)",
    )
    a(
        "--result-ttl",
        type=float,
        default=1800.0,
        help="seconds a result is kept when nobody downloads it (default 1800)",
    )
    a(
        "--keep-after-download",
        type=float,
        default=60.0,
        help="seconds a result is kept after its download (default 60)",
    )
    a("-v", "--verbose", action="store_true", help="log every request and model load")


def _settings(args: argparse.Namespace) -> Any:
    from ..serve.app import Settings

    for flag, value, low in (
        ("--max-upload-mb", args.max_upload_mb, 0.0),
        ("--request-timeout", args.request_timeout, 0.0),
        ("--job-timeout", args.job_timeout, 0.0),
        ("--result-ttl", args.result_ttl, 0.0),
    ):
        if not (math.isfinite(value) and value > low):
            raise UsageError(f"{flag}: {value:g} must be a positive number")
    if not (math.isfinite(args.keep_after_download) and args.keep_after_download >= 0):
        raise UsageError(f"--keep-after-download: {args.keep_after_download:g} must be >= 0")
    for flag, value in (
        ("--max-pixels", args.max_pixels),
        ("--max-files", args.max_files),
        ("--queue-size", args.queue_size),
    ):
        if value < 1:
            raise UsageError(f"{flag}: {value} must be 1 or more")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port: {args.port} is not a port number (0-65535)")
    devices = tuple(d for spec in args.device or () for d in spec.split(",") if d.strip())
    return Settings(
        host=args.host,
        port=args.port,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_pixels=args.max_pixels,
        max_files=args.max_files,
        queue_size=args.queue_size,
        request_timeout_s=args.request_timeout,
        job_timeout_s=args.job_timeout,
        result_ttl_s=args.result_ttl,
        keep_after_download_s=args.keep_after_download,
        devices=tuple(d.strip() for d in devices),
        precision=args.precision,
        default_model=args.model,
    )


def _check_devices(devices: tuple[str, ...]) -> None:
    if not devices:
        return
    from ..infer.precision import resolve_device

    for d in devices:
        resolve_device(d, None, cli=True)


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so a busy port is one clear line (exit 2)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as e:
        raise UsageError(
            f"--host/--port: cannot listen on {host}:{port} ({e.strerror or e}); "
            "is another server using it? choose another --port"
        ) from None


def _url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def run(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn
    except ImportError as e:
        raise UsageError(
            f'resrgan serve needs the web extra ({e.name} is missing): pip install "resrgan[web]"'
        ) from None
    settings = _settings(args)
    if args.host not in LOOPBACK:
        print(
            f"resrgan serve: warning: listening on {args.host}, not 127.0.0.1: anyone who can "
            "reach this machine can upload images and use its processor; the page has no login",
            file=sys.stderr,
        )
    from .upscale import _cli_logging

    with _cli_logging(args.verbose, "serve"):
        _check_devices(settings.devices)
        sock = _listen(args.host, args.port)
        from ..serve.app import create_app

        app = create_app(settings)
        port = sock.getsockname()[1]
        url = _url(args.host, port)
        config = uvicorn.Config(
            app,
            log_level="info" if args.verbose else "warning",
            access_log=args.verbose,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=5,
            limit_concurrency=200,
            server_header=False,
        )
        server = uvicorn.Server(config)
        print(f"resrgan serve: {url} (Ctrl-C to stop)", flush=True)
        if args.open:
            threading.Thread(target=_open_when_started, args=(server, url), daemon=True).start()
        try:
            # uvicorn shuts down cleanly on SIGINT/SIGTERM, then raises the signal again with the
            # previous handlers back: both end here as KeyboardInterrupt, and exit 0
            with _sigterm_as_interrupt():
                server.run(sockets=[sock])
        except KeyboardInterrupt:
            pass
    print("resrgan serve: stopped", flush=True)
    return 0


def _open_when_started(server: Any, url: str) -> None:
    import time
    import webbrowser

    for _ in range(600):
        if server.started:
            webbrowser.open(url)
            return
        time.sleep(0.05)
