"""The server's work: a bounded queue of images and one worker thread per device.

Each accepted image is a :class:`Job`. Jobs wait in one first-in-first-out queue of at most
``queue_size`` images; a worker per device (one for the CPU, one per GPU) takes the next one, so
each device runs one image at a time. A worker keeps its model loaded between jobs and loads
another only when a job asks for a different model (or denoise strength): switching loads the new
one once. Progress comes from the upscaler's tile callback; the same callback stops a job that is
cancelled or runs past the time limit.

Results are PNG files in the server's temporary folder, named by the job id. They are deleted
``result_ttl_s`` after they were made, or ``keep_after_download_s`` after a download, whichever
comes first; the job record goes with them.

Every change bumps :attr:`JobQueue.version` and wakes :meth:`JobQueue.wait_change`, which the
status endpoint uses for long polling.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .upload import UploadedFile, download_stem

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

#: a job's states; "gone" is what the status endpoint says of a job it no longer knows
STATES = ("queued", "running", "done", "error")


@dataclass(frozen=True)
class ModelChoice:
    """A model the page offers. ``load(denoise_strength)`` returns the network (CPU, fp32);
    ``denoise`` says whether the model takes a denoise strength."""

    name: str
    description: str
    scale: int
    load: Callable[[float], nn.Module]
    denoise: bool = False


def zoo_choices() -> list[ModelChoice]:
    """The upscaling models of the zoo that need no download: cached, converted offline from the
    installed ncnn files, or shipped in the package (``resrgan models`` gives the same status)."""
    from ..weights.zoo import MODELS, model_status

    def loader(name: str, twin: bool) -> Callable[[float], nn.Module]:
        def load(denoise: float) -> nn.Module:
            from ..weights.zoo import load_zoo_model

            dn = denoise if twin else None  # without its twin offline: the model alone
            return load_zoo_model(name, denoise_strength=dn, download=False)[0]

        return load

    out = []
    for info in MODELS.values():
        if not info.is_generator or model_status(info.name) == "download":
            continue
        twin = info.dni_twin is not None and model_status(info.dni_twin) != "download"
        out.append(
            ModelChoice(info.name, info.description, info.scale, loader(info.name, twin), twin)
        )
    return out


@dataclass(frozen=True)
class JobOptions:
    model: str
    outscale: float
    denoise: float
    tile: int | str


@dataclass(eq=False)
class Job:
    id: str
    name: str  # the client's file name: display text only
    upload: Path
    options: JobOptions
    in_width: int
    in_height: int
    state: str = "queued"
    phase: str = "waiting"
    done_tiles: int = 0
    total_tiles: int = 0
    error: str | None = None
    result: Path | None = None
    width: int = 0
    height: int = 0
    started: float | None = None
    seconds: float | None = None
    expires: float | None = None
    cancelled: bool = False

    @property
    def download_name(self) -> str:
        return f"{download_stem(self.name)}_out.png"


class JobStopped(Exception):
    """Raised from the tile callback to stop a job (cancelled, over the time limit, shutdown)."""


class QueueFull(Exception):
    pass


class JobQueue:
    """Jobs by id, the waiting line, the workers and the clean-up of results."""

    def __init__(
        self,
        *,
        models: Sequence[ModelChoice],
        results: Path,
        queue_size: int,
        max_pixels: int,
        job_timeout_s: float,
        result_ttl_s: float,
        keep_after_download_s: float,
        devices: Sequence[str] = (),
        precision: str = "auto",
    ) -> None:
        self.models = {m.name: m for m in models}
        self.results = results
        self.queue_size = queue_size
        self.max_pixels = max_pixels
        self.job_timeout_s = job_timeout_s
        self.result_ttl_s = result_ttl_s
        self.keep_after_download_s = keep_after_download_s
        self.devices = tuple(devices)
        self.precision = precision
        self.jobs: dict[str, Job] = {}
        self.waiting: collections.deque[Job] = collections.deque()
        self.lock = threading.Lock()
        self.has_work = threading.Condition(self.lock)
        self.version = 0
        self.workers: list[Worker] = []
        self.ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self._stopping = False

    # ---------------------------------------------------------------- life cycle
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start one worker per device (called from the running event loop)."""
        self._loop = loop
        self._changed = asyncio.Event()
        self._stopping = False
        self.ready.clear()
        threading.Thread(
            target=self._start_workers, name="resrgan-serve-start", daemon=True
        ).start()

    def _start_workers(self) -> None:
        # importing torch takes seconds: done here, so the page answers at once
        from ..infer.upscaler import Upscaler  # noqa: F401

        devices = self.devices or _auto_devices()
        with self.lock:
            if self._stopping:
                return
            self.workers = [Worker(self, d) for d in devices]
            for w in self.workers:
                w.start()
        log.info("workers ready on %s", ", ".join(devices))
        self.ready.set()
        self._notify()

    def stop(self) -> None:
        with self.lock:
            self._stopping = True
            for job in self.jobs.values():
                job.cancelled = True
            self.has_work.notify_all()
            workers = list(self.workers)
        for w in workers:
            w.join(timeout=10)

    # ---------------------------------------------------------------- submitting
    def free_places(self) -> int:
        with self.lock:
            return self.queue_size - len(self.waiting)

    def full_message(self, wanted: int | None = None) -> str:
        """Why an upload of ``wanted`` images (None: not counted yet) was refused."""
        taken = self.queue_size - self.free_places()
        upload = (
            "" if wanted is None else f" and this upload has {wanted} image" + "s" * (wanted != 1)
        )
        return (
            f"the queue is full: {taken} of {self.queue_size} places are taken{upload}; "
            "try again when some are done"
        )

    def submit(self, files: Iterable[UploadedFile], options: JobOptions) -> list[Job]:
        """Queue one job per file, all or none (:class:`QueueFull`)."""
        files = list(files)
        with self.lock:
            if len(self.waiting) + len(files) > self.queue_size:
                raise QueueFull(len(files))
            jobs = []
            for f in files:
                job = Job(
                    id=secrets.token_urlsafe(12),
                    name=f.name,
                    upload=f.path,
                    options=options,
                    in_width=f.width,
                    in_height=f.height,
                )
                self.jobs[job.id] = job
                self.waiting.append(job)
                jobs.append(job)
            self.has_work.notify_all()
        self._notify()
        return jobs

    def take(self) -> Job | None:
        """The next waiting job for a worker; None when the server stops."""
        with self.lock:
            while not self.waiting and not self._stopping:
                self.has_work.wait()
            if self._stopping:
                return None
            job = self.waiting.popleft()
            job.state, job.phase, job.started = "running", "starting", time.monotonic()
        self._notify()
        return job

    def cancel(self, job: Job) -> None:
        """Stop a job (a running one stops at its next tile) and delete its files."""
        with self.lock:
            job.cancelled = True
            if job in self.waiting:
                self.waiting.remove(job)
            if job.state != "running":
                self._forget(job)
        self._notify()

    # ---------------------------------------------------------------- reporting
    def get(self, job_id: str) -> Job | None:
        with self.lock:
            return self.jobs.get(job_id)

    def describe(self, job: Job) -> dict[str, Any]:
        """The job as the page sees it (JSON)."""
        with self.lock:
            position = self.waiting.index(job) + 1 if job.state == "queued" else 0
            d: dict[str, Any] = {
                "id": job.id,
                "name": job.name,
                "state": job.state,
                "phase": job.phase,
                "position": position,
                "done": job.done_tiles,
                "total": job.total_tiles,
                "model": job.options.model,
                "outscale": job.options.outscale,
                "in_width": job.in_width,
                "in_height": job.in_height,
            }
            if job.state == "error":
                d["error"] = job.error
            if job.state == "done":
                d.update(
                    width=job.width,
                    height=job.height,
                    seconds=round(job.seconds or 0.0, 3),
                    result=f"/api/jobs/{job.id}/result",
                    download=f"/api/jobs/{job.id}/download",
                    download_name=job.download_name,
                )
        return d

    def update(self, job: Job, **changes: Any) -> None:
        with self.lock:
            for k, v in changes.items():
                setattr(job, k, v)
        self._notify()

    def _notify(self) -> None:
        """Bump the version and wake the long polls (from any thread)."""
        with self.lock:
            self.version += 1
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: shutting down
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    async def wait_change(self, since: int, timeout: float) -> None:
        """Return when :attr:`version` is past ``since``, or after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.version <= since and self._changed is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:  # not the builtin before Python 3.11
                return

    # ---------------------------------------------------------------- results
    def downloaded(self, job: Job) -> None:
        """A download happened: the result goes ``keep_after_download_s`` from now."""
        with self.lock:
            soon = time.monotonic() + self.keep_after_download_s
            job.expires = soon if job.expires is None else min(job.expires, soon)
        if self.keep_after_download_s <= 0:
            self.sweep()

    def sweep(self, now: float | None = None) -> int:
        """Delete expired results and forget their jobs; returns how many went."""
        now = time.monotonic() if now is None else now
        with self.lock:
            gone = [j for j in self.jobs.values() if j.expires is not None and j.expires <= now]
            for job in gone:
                self._forget(job)
        if gone:
            log.info("deleted %d expired result(s)", len(gone))
            self._notify()
        return len(gone)

    def _forget(self, job: Job) -> None:
        """(lock held) Remove a finished or waiting job and its files."""
        self.jobs.pop(job.id, None)
        job.upload.unlink(missing_ok=True)
        if job.result is not None:
            job.result.unlink(missing_ok=True)

    def finish(self, job: Job, **changes: Any) -> None:
        """A worker is done with ``job``: record the outcome, start its expiry clock."""
        with self.lock:
            for k, v in changes.items():
                setattr(job, k, v)
            job.upload.unlink(missing_ok=True)
            job.expires = time.monotonic() + self.result_ttl_s
            if job.cancelled:
                self._forget(job)
        self._notify()


def _auto_devices() -> list[str]:
    """Every CUDA device, else the best single device (MPS or CPU)."""
    import torch

    if torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    from ..infer.precision import resolve_device

    return [str(resolve_device(None, None))]


class Worker(threading.Thread):
    """Runs jobs on one device, one at a time, keeping the last model loaded."""

    def __init__(self, queue: JobQueue, device: str) -> None:
        super().__init__(name=f"resrgan-serve-{device}", daemon=True)
        self.queue = queue
        self.device = device
        self._key: tuple[str, float | None] | None = None
        self._net: nn.Module | None = None
        self._upscaler: Any = None
        self._tile: int | str | None = None

    def run(self) -> None:
        while True:
            job = self.queue.take()
            if job is None:
                return
            try:
                self._run(job)
            except JobStopped as e:
                self.queue.finish(job, state="error", phase="stopped", error=str(e))
            except Exception as e:
                self.queue.finish(job, state="error", phase="failed", error=_reason(e, job))
                if not _is_expected(e):
                    log.exception("job %s (%s) failed", job.id, job.name)

    def _run(self, job: Job) -> None:
        from ..io.images import read_image, write_image

        q = self.queue
        up = self._upscaler_for(job)
        q.update(job, phase="reading")
        image = read_image(job.upload, max_pixels=q.max_pixels)
        job.upload.unlink(missing_ok=True)
        started = job.started or time.monotonic()

        def progress(done: int, total: int) -> None:
            if job.cancelled:
                raise JobStopped("cancelled")
            if time.monotonic() - started > q.job_timeout_s:
                raise JobStopped(
                    f"stopped after {q.job_timeout_s:g} s (--job-timeout); use a smaller image, "
                    "outscale or model"
                )
            q.update(job, done_tiles=done, total_tiles=total)

        q.update(job, phase="upscaling")
        out = up.upscale(image.pixels, outscale=job.options.outscale, progress=progress)
        q.update(job, phase="saving")
        result = q.results / f"{job.id}.png"
        write_image(result, out, icc_profile=image.icc_profile, exif=image.exif)
        q.finish(
            job,
            state="done",
            phase="done",
            result=result,
            width=int(out.shape[1]),
            height=int(out.shape[0]),
            seconds=time.monotonic() - started,
        )

    def _upscaler_for(self, job: Job) -> Any:
        """The Upscaler for this job's model and tile; loads a model only when it changes."""
        from ..infer.upscaler import Upscaler

        choice = self.queue.models[job.options.model]
        key = (choice.name, job.options.denoise if choice.denoise else None)
        if key != self._key or self._net is None:
            self.queue.update(job, phase="loading model")
            self._net = self._upscaler = self._key = None  # free the old model first
            net = choice.load(job.options.denoise)
            log.info("loaded %s on %s", choice.name, self.device)
            self._net, self._key, self._tile = net, key, None
        if self._upscaler is None or self._tile != job.options.tile:
            self._upscaler = Upscaler(
                self._net,
                device=self.device,
                tile=job.options.tile,
                precision=self.queue.precision,
            )
            self._tile = job.options.tile
        return self._upscaler


def _is_expected(e: BaseException) -> bool:
    from ..errors import ResrganError

    return isinstance(e, (ResrganError, MemoryError))


def _reason(e: BaseException, job: Job) -> str:
    """One line for the page: the error without our temporary path (the page shows the name)."""
    from ..errors import ResrganError

    if isinstance(e, ResrganError):
        text = str(e)
    elif isinstance(e, MemoryError):
        text = "not enough memory for this image; use a smaller image, outscale or tile"
    else:
        text = f"internal error ({type(e).__name__}: {e}); see the server log"
    text = " ".join(text.split())
    for p in (str(job.upload), job.upload.name):
        text = text.replace(f"{p}: ", "").replace(p, "the upload")
    return text if len(text) <= 300 else text[:297] + "..."
