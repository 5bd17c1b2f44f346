"""Batch upscaling that never loses work: plain functions over explicit state.

``plan_jobs`` turns a file or a folder into a sorted list of :class:`Job` (input path, planned
output path); ``run_jobs`` runs them one by one through any object with ``upscale(pixels, *,
outscale)`` and ``output_shape(h, w, *, outscale)`` (normally
:class:`resrgan.infer.upscaler.Upscaler`) and returns a :class:`Summary`.

Guarantees:

* One bad file never stops the batch: its error becomes one :class:`Event` with ``status="failed"``
  and one entry of ``Summary.failed``; the next file is processed.
* Outputs are written atomically by :func:`resrgan.io.images.write_image` (temporary name in the
  same folder, then renamed: :func:`resrgan.paths.atomic_path`), so an output path either holds a
  complete image or does not exist.
* File names need not be valid UTF-8: a name with undecodable bytes (``b"caf\\xe9.png"`` on Linux)
  is read and gives the output name with the same bytes (image I/O goes through Python file
  objects, never a path handed to OpenCV).
* Existing outputs are skipped unless ``overwrite=True``: re-running an interrupted batch resumes
  it.
* Inputs are never modified: an output path equal to its own input, or (with ``overwrite``) to any
  other input of the batch, is refused for that file.
* The output format is checked (``check_writable``) before the model runs, so a 16-bit image bound
  for a JPEG or a too-large WebP fails in milliseconds, not after minutes of compute.
* ``KeyboardInterrupt`` stops cleanly between or inside files: the file in progress leaves no
  temporary file, ``Summary.interrupted`` is set and the summary is returned (the CLI exits 130); a
  rerun resumes.
* ICC profile and EXIF (orientation already reset by ``read_image``) are carried into the output,
  and the bit depth is kept (the upscaler returns the input's dtype).

Output names follow the original ``inference_realesrgan.py``: ``{stem}_{suffix}.{ext}``, or
``{stem}.{ext}`` when the suffix is empty; ``ext="auto"`` keeps the input's extension, and an image
with alpha is written as PNG.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from glob import escape as glob_escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ImageWriteError, ResrganError, UsageError
from .shard import Shard, share

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

#: values accepted for ``ext`` (``auto`` keeps the input's extension; alpha forces png)
OUTPUT_EXTS: tuple[str, ...] = ("auto", "png", "jpg", "jpeg", "webp", "tif", "tiff", "bmp")

#: event statuses, in the order a file can end
STATUSES: tuple[str, ...] = ("done", "skipped", "failed", "interrupted")


class SupportsUpscale(Protocol):
    """What ``run_jobs`` needs from an upscaler (``resrgan.infer.upscaler.Upscaler`` has it)."""

    def upscale(self, image: np.ndarray, *, outscale: float | None = None) -> np.ndarray: ...

    def output_shape(
        self, height: int, width: int, *, outscale: float | None = None
    ) -> tuple[int, int]: ...


@dataclass(frozen=True)
class Job:
    """One input file and where its output goes.

    ``output`` is the planned path, with the extension decided from the input's name; when the image
    turns out to have alpha (and ``ext`` forces png) the final path differs only by its extension.
    ``conflict`` names an earlier input of the batch planned to the same output path (that job
    fails).
    """

    input: Path
    output: Path
    ext: str = "auto"
    conflict: Path | None = None


class JobList(list[Job]):
    """The jobs of a batch, plus the non-image files that were skipped while planning it."""

    def __init__(self, jobs: Iterable[Job] = (), *, non_images: Iterable[Path] = ()) -> None:
        super().__init__(jobs)
        self.non_images: list[Path] = list(non_images)


@dataclass(frozen=True)
class Event:
    """What happened to one file: passed to the ``on_event`` callback once per job."""

    input: Path
    output: Path | None
    status: str  # one of STATUSES
    seconds: float
    error: str | None = None
    index: int = 0  # 0-based position in the batch
    total: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: input, output, status, seconds, error."""
        return {
            "input": str(self.input),
            "output": None if self.output is None else str(self.output),
            "status": self.status,
            "seconds": round(self.seconds, 4),
            "error": self.error,
        }


@dataclass
class Summary:
    """Counts of a finished (or interrupted) batch."""

    done: int = 0
    skipped: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    non_images: int = 0
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when nothing failed and the batch was not interrupted."""
        return not self.failed and not self.interrupted

    def as_dict(self) -> dict[str, Any]:
        return {
            "summary": True,
            "done": self.done,
            "skipped": self.skipped,
            "failed": [{"input": str(p), "error": r} for p, r in self.failed],
            "non_images": self.non_images,
            "interrupted": self.interrupted,
            "seconds": round(self.seconds, 3),
        }


# --- planning ------------------------------------------------------------------------------


def _normalise_ext(ext: str) -> str:
    e = ext.lower().lstrip(".")
    if e not in OUTPUT_EXTS:
        raise UsageError(
            f"--ext: unsupported output extension {ext!r}; use one of {', '.join(OUTPUT_EXTS)}"
        )
    return e


def _check_suffix(suffix: str) -> None:
    bad = [c for c in ("/", "\\", os.sep, "\0") if c in suffix]
    if bad:
        raise UsageError(
            f"--suffix: {suffix!r} contains a path separator; use a plain word such as 'out' or ''"
        )


def _planned_ext(path: Path, ext: str) -> str:
    """The output extension known from the name alone (alpha is only known after reading)."""
    if ext != "auto":
        return ext
    from ..io.images import output_extension

    return output_extension(str(path), "auto").lstrip(".")


def output_name(path: Path, suffix: str, ext: str) -> str:
    """``{stem}_{suffix}.{ext}``, or ``{stem}.{ext}`` when ``suffix`` is empty (as the original)."""
    stem = path.stem
    return f"{stem}_{suffix}.{ext}" if suffix else f"{stem}.{ext}"


def _same_path(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def _walk(root: Path, *, recursive: bool, exclude: Path) -> Iterable[tuple[Path, Path]]:
    """(file, relative parent) pairs under ``root``, sorted; dot-files and ``exclude`` left out."""
    if not recursive:
        for p in sorted(root.iterdir(), key=lambda q: q.name):
            if not p.name.startswith(".") and p.is_file():
                yield p, Path()
        return
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and not _same_path(here / d, exclude)
        )
        rel = here.relative_to(root)
        for name in sorted(filenames):
            p = here / name
            if not name.startswith(".") and p.is_file():
                yield p, rel


def plan_jobs(
    input: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    suffix: str = "out",
    ext: str = "auto",
    recursive: bool = False,
    shard: Shard | None = None,
) -> JobList:
    """List the jobs for a file or a folder.

    A folder's files are taken in sorted order (dot-files ignored); with ``recursive`` sub-folders
    are walked too and mirrored under ``output_dir`` (``output_dir`` itself is never walked, so
    results inside the input tree are not re-processed on a rerun). Files whose suffix is not an
    image suffix are skipped and listed in ``JobList.non_images``. A single file is always planned,
    whatever its suffix (reading it will say what is wrong). Nothing is created or read here.
    With ``shard`` only that worker's contiguous block of the sorted jobs is returned
    (:func:`resrgan.infer.shard.share`, taken after name conflicts are settled over all inputs).

    Raises UsageError for a missing input, a bad ``ext`` or a ``suffix`` with a path separator.
    """
    from ..io.images import is_image_path

    src = Path(input)
    out_dir = Path(output_dir)
    ext = _normalise_ext(ext)
    _check_suffix(suffix)
    if not src.exists():
        raise UsageError(f"-i/--input: {src}: no such file or folder")
    if src.is_file():
        name = output_name(src, suffix, _planned_ext(src, ext))
        return JobList(share([Job(src, out_dir / name, ext)], shard))
    if not src.is_dir():
        raise UsageError(f"-i/--input: {src}: not a regular file or folder")

    found: list[tuple[Path, Path]] = []
    non_images: list[Path] = []
    for path, rel in _walk(src, recursive=recursive, exclude=out_dir):
        if not is_image_path(path):
            non_images.append(path)
            continue
        found.append((path, out_dir / rel / output_name(path, suffix, _planned_ext(path, ext))))
    # With -o equal to the input folder, earlier outputs (a_out.png next to a.png) are outputs of
    # this batch, not inputs: otherwise every rerun would make a new generation (a_out_out.png).
    made_by = {os.path.normcase(os.path.abspath(t)): p for p, t in found}
    outputs = [p for p, _ in found if made_by.get(os.path.normcase(os.path.abspath(p)), p) != p]
    if outputs:
        logger.info("%s: %d file(s) are outputs of other inputs; not inputs", src, len(outputs))
        found = [(p, t) for p, t in found if p not in outputs]
    # Two inputs may map to one output (a.gif and a.png both give a_out.png): the output belongs to
    # the input with the same extension, else to the first in sorted order; the others are refused.
    owner: dict[str, Path] = {}
    for path, target in found:
        key = os.path.normcase(os.path.abspath(target))
        same_ext = path.suffix.lower() == target.suffix.lower()
        if key not in owner or (same_ext and owner[key].suffix.lower() != target.suffix.lower()):
            owner[key] = path
    jobs = []
    for path, target in found:
        first = owner[os.path.normcase(os.path.abspath(target))]
        jobs.append(Job(path, target, ext, conflict=None if first == path else first))
    if non_images:
        logger.info("%s: skipping %d non-image file(s)", src, len(non_images))
    return JobList(share(jobs, shard), non_images=non_images)


# --- running -------------------------------------------------------------------------------


def _reason(err: BaseException, path: Path) -> str:
    """One line: the error's message without a repeated ``<path>: `` prefix."""
    if isinstance(err, ResrganError):
        msg = str(err)
    elif isinstance(err, OSError) and err.strerror:
        where = err.filename if err.filename is not None else path
        msg = f"{where}: {err.strerror}"
    else:
        text = str(err).strip()
        msg = f"{type(err).__name__}: {text}" if text else type(err).__name__
    msg = " ".join(msg.split())  # one line
    for prefix in (f"{path}: ", f"{path.resolve()}: "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
            break
    return msg if len(msg) <= 400 else msg[:397] + "..."


class _Skip(Exception):
    pass


class _Refuse(Exception):
    pass


def _final_output(job: Job, image: Any) -> Path:
    """The planned output with the extension ``output_extension`` picks for this image (alpha or
    16-bit pixels may need png where the name alone suggested jpg)."""
    from ..io.images import output_extension

    ext = output_extension(image, job.ext).lstrip(".")
    return job.output.with_name(f"{job.output.stem}.{ext}")


def _remove_stale_temps(output: Path) -> None:
    """Delete temporary files a killed earlier run left for ``output`` (write_image's naming)."""
    from ..io import images

    mark = getattr(images, "TMP_MARK", None) or getattr(images, "_TMP_MARK", None)
    if not mark or not output.parent.is_dir():
        return
    for stale in output.parent.glob(f".{glob_escape(output.stem)}{mark}*{output.suffix}"):
        try:
            stale.unlink()
            logger.info("removed %s, left by an interrupted run", stale)
        except OSError:
            pass


def _guard_output(
    job: Job, output: Path, inputs: set[str], written: dict[str, Path], overwrite: bool
) -> None:
    """Raise _Refuse or _Skip when ``output`` must not be (re)written."""
    if _same_path(output, job.input):
        raise _Refuse(
            f"output {output} is the input file itself; refusing to overwrite it "
            "(use a non-empty --suffix or another -o/--output folder)"
        )
    key = os.path.normcase(os.path.abspath(output))
    if key in written:
        raise _Refuse(
            f"output {output} was already written from {written[key]} in this batch (two inputs "
            "map to one output name); rename one of them, or run it alone with another --suffix"
        )
    if output.exists() or output.is_symlink():
        if not overwrite:
            raise _Skip(f"{output} exists (use --overwrite to replace it)")
        if key in inputs:
            raise _Refuse(
                f"output {output} is also an input of this batch; refusing to overwrite it "
                "(use another --suffix or -o/--output folder)"
            )
        if output.is_dir():
            raise _Refuse(f"output {output} is a folder; remove it or choose another --suffix")


def _process(
    job: Job,
    upscaler: SupportsUpscale,
    *,
    outscale: float | None,
    overwrite: bool,
    inputs: set[str],
    written: dict[str, Path],
    read_kwargs: dict[str, Any],
    quality: int,
) -> Path:
    """Run one job; returns the output path. Raises _Skip/_Refuse or the underlying error."""
    from ..io.images import check_writable, read_image, write_image

    if job.conflict is not None:
        raise _Refuse(
            f"output {job.output} is also the output of {job.conflict} (two inputs map to one "
            "output name); rename one of them, or run it alone with another --suffix"
        )
    _guard_output(job, job.output, inputs, written, overwrite)
    image = read_image(job.input, **read_kwargs)
    output = _final_output(job, image)
    if output != job.output:
        _guard_output(job, output, inputs, written, overwrite)
    pixels = image.pixels
    height, width = int(pixels.shape[0]), int(pixels.shape[1])
    channels = 1 if pixels.ndim == 2 else int(pixels.shape[2])
    out_h, out_w = upscaler.output_shape(height, width, outscale=outscale)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ImageWriteError(
            f"{output}: cannot create the folder {output.parent} ({e.strerror or e}); "
            "choose another -o/--output"
        ) from None
    check_writable(output, out_h, out_w, channels, pixels.dtype)
    result = upscaler.upscale(pixels, outscale=outscale)
    del pixels
    _remove_stale_temps(output)
    write_image(output, result, icc_profile=image.icc_profile, exif=image.exif, quality=quality)
    return output


def _run_one(
    job: Job,
    upscaler: SupportsUpscale,
    summary: Summary,
    **kwargs: Any,
) -> Event:
    """Process one job, update ``summary`` and return its event (KeyboardInterrupt propagates)."""
    try:
        output = _process(job, upscaler, **kwargs)
    except _Skip as e:
        summary.skipped += 1
        logger.info("skipped %s: %s", job.input, e)
        return Event(job.input, job.output, "skipped", 0.0)
    except _Refuse as e:
        summary.failed.append((job.input, str(e)))
        logger.info("failed %s: %s", job.input, e)
        return Event(job.input, job.output, "failed", 0.0, str(e))
    except Exception as e:  # a bad file: report it and go on
        reason = _reason(e, job.input)
        summary.failed.append((job.input, reason))
        logger.info("failed %s: %s", job.input, reason)
        logger.debug("details for %s", job.input, exc_info=True)
        return Event(job.input, job.output, "failed", 0.0, reason)
    kwargs["written"][os.path.normcase(os.path.abspath(output))] = job.input
    summary.done += 1
    logger.info("%s -> %s", job.input, output)
    return Event(job.input, output, "done", 0.0)


def run_jobs(
    jobs: Iterable[Job],
    upscaler: SupportsUpscale,
    *,
    outscale: float | None = None,
    overwrite: bool = False,
    on_event: Callable[[Event], None] | None = None,
    max_pixels: int | None = None,
    quality: int = 95,
    non_images: int | None = None,
) -> Summary:
    """Upscale every job; one bad file never stops the batch (see the module doc).

    ``max_pixels`` is passed to ``read_image`` when given (else its default limit applies);
    ``non_images`` defaults to ``len(jobs.non_images)`` for a :class:`JobList`. On
    ``KeyboardInterrupt`` the current file is abandoned (no temporary file is left), an
    ``interrupted`` event is sent and the summary is returned with ``interrupted=True``.
    """
    job_list = list(jobs)
    if non_images is None:
        non_images = len(getattr(jobs, "non_images", ()))
    summary = Summary(non_images=non_images)
    inputs = {os.path.normcase(os.path.abspath(j.input)) for j in job_list}
    written: dict[str, Path] = {}
    read_kwargs: dict[str, Any] = {} if max_pixels is None else {"max_pixels": max_pixels}
    start = time.perf_counter()
    total = len(job_list)

    def emit(event: Event) -> None:
        if on_event is not None:
            on_event(event)

    current: tuple[int, Job, float] | None = None
    try:
        for index, job in enumerate(job_list):
            t0 = time.perf_counter()
            current = (index, job, t0)
            event = _run_one(
                job,
                upscaler,
                summary,
                outscale=outscale,
                overwrite=overwrite,
                inputs=inputs,
                written=written,
                read_kwargs=read_kwargs,
                quality=quality,
            )
            current = None  # the job is accounted for, even if the callback is interrupted
            emit(replace(event, seconds=time.perf_counter() - t0, index=index, total=total))
    except KeyboardInterrupt:
        summary.interrupted = True
        if current is not None:
            index, job, t0 = current
            logger.info("interrupted while processing %s", job.input)
            emit(
                Event(job.input, None, "interrupted", time.perf_counter() - t0, None, index, total)
            )
    summary.seconds = time.perf_counter() - start
    return summary
