"""Video benchmarks on the CPU: frames/s split into decode, network and encode; the pipelined run;
peak RSS against clip length; the original ``inference_realesrgan_video.py`` side by side.

    python bench/video.py                          # speed rows and memory
    python bench/video.py --quick                  # fewer frames
    python bench/video.py --only speed,memory,original --frames 8
    python bench/video.py --only original --original-script PATH/inference_realesrgan_video.py

Clips are made here: ``--frames`` frames panning across a real photo (shared/data/real_lr, or a
synthetic pattern without it), encoded with libx264 (CRF 18) at 25 fps with an AAC track.

**speed**: for realesr-animevideov3 at 320x180 and 640x360 and RealESRGAN_x4plus at 160x90 (x4,
fp32, no tiling), each stage alone (decode: ``VideoReader`` to RGB; network:
``Upscaler.upscale`` per frame; encode: ``SegmentWriter`` with the default libx264 CRF 18 medium),
then the whole ``upscale_video`` (probe, decode, network, encode overlapped in threads, join with
the audio), each as wall and CPU seconds (all threads of the process). "decode + encode vs
network" is what the two stages cost beside the network; "pipelined vs network alone" is
(pipelined - network) / network: what decoding, encoding and joining add in the real run.

**memory**: peak RSS (ru_maxrss of a child process per clip) of ``upscale_video`` for clips of
1x, 4x and 16x ``--frames`` frames at 160x90, then 4x again (the two 4x runs show the noise), and
the RSS after a quarter, half, three quarters and all of each clip. ``--memory-model
compact-tiny`` (a random tiny net) makes long clips quick. The child sets up the allocator as
the ``resrgan`` console script does (:mod:`resrgan.allocator`).

**original**: the original script's ``inference_video`` (realesrgan 0.3.0 and basicsr 1.4.2 fetched
as in bench/compare_original.py, ffmpeg-python and future fetched likewise, the system ``ffmpeg``
binary) against ``upscale_video`` (fp32 and, as its own row, bf16) on the same clip, same
weights, CPU, alternately, each in its own child process. Per run: wall seconds from process
start to exit, CPU seconds of the process and the children it waited for (the original's two
ffmpeg processes), fps between the first and the last frame's network pass, and start-up (the
wall time the frames at that fps do not explain: imports, model loading, probing, joining). The
original calls ``torch.cuda.synchronize`` after every frame, which fails without CUDA: it is
replaced by a no-op. The script itself is not shipped here; pass its path with
``--original-script`` (it is in the Real-ESRGAN repository and the realesrgan sdist, not in the
wheel). Without it, or without the ``ffmpeg`` binary, the row says why it was skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
PHOTOS = Path(os.environ.get("RESRGAN_SHARED", REPO.parent / "shared")) / "data" / "real_lr"
SPEED_ROWS = (("realesr-animevideov3", 320, 180), ("realesr-animevideov3", 640, 360),
              ("RealESRGAN_x4plus", 160, 90))  # fmt: skip
EXTRA_WHEELS = ("ffmpeg-python==0.2.0", "future==1.0.0")


def make_clip(path: Path, width: int, height: int, frames: int) -> Path:
    """A clip panning across a photo (or a pattern), x264 CRF 18, 25 fps, with AAC audio."""
    import av

    from resrgan.io.images import read_image

    photos = sorted(PHOTOS.glob("*.png")) if PHOTOS.is_dir() else []
    if photos:
        big = np.asarray(read_image(photos[0]).pixels)[..., :3]
        if big.dtype != np.uint8:
            big = (big // 257).astype(np.uint8)
    else:
        yy, xx = np.mgrid[0 : height * 2, 0 : width * 3]
        big = np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8)
    while big.shape[0] < height + frames or big.shape[1] < width + 2 * frames:
        big = np.concatenate([big, big[::-1]], 0)
        big = np.concatenate([big, big[:, ::-1]], 1)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"crf": "18"}
        cc = vs.codec_context
        cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = 6, 1, 6, 6
        au = out.add_stream("aac", rate=48000)
        au.layout = "stereo"
        for i in range(frames):
            crop = np.ascontiguousarray(big[i : i + height, 2 * i : 2 * i + width])
            f = av.VideoFrame.from_ndarray(crop, format="rgb24")
            f = f.reformat(format="yuv420p", dst_colorspace="SMPTE170M", dst_color_range="MPEG")
            f.pts = i
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        samples, t = int(frames / 25 * 48000), 0
        while t < samples:
            a = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), "fltp", "stereo")
            a.sample_rate, a.pts = 48000, t
            for p in au.encode(a):
                out.mux(p)
            t += 1024
        for p in au.encode(None):
            out.mux(p)
    return path


def _timed(fn: Any) -> tuple[Any, float, float]:
    """``fn()``, its wall seconds and its CPU seconds (every thread of this process)."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def stage_times(
    model: str, clip: Path, out: Path, precision: str = "half"
) -> dict[str, tuple[float, float]]:
    """(wall, CPU) seconds for decode, network and encode alone, then the pipelined
    upscale_video; and the frame count. ``precision``: as Upscaler's (half: the CLI's default)."""
    from resrgan import Upscaler
    from resrgan.infer.video import VideoJob, VideoSettings, upscale_video
    from resrgan.io import video as vio

    up = Upscaler(model, tile=0, precision=precision)
    info = vio.probe(clip)

    def decode() -> list[tuple[int, np.ndarray]]:
        with vio.VideoReader(info) as reader:
            return list(reader.frames())

    decoded, *t_decode = _timed(decode)
    outs, *t_network = _timed(lambda: [(p, up.upscale(f)) for p, f in decoded])
    enc = vio.resolve_encoder(codec=None, pix_fmt=None, crf=None, preset=None, bit_depth=8)
    oh, ow = outs[0][1].shape[:2]

    def encode() -> None:
        writer = vio.SegmentWriter(
            out.with_suffix(".seg.mp4"), enc, width=ow, height=oh, time_base=info.time_base,
            frame_rate=info.frame_rate, colour=info.colour, sar=None,
        )  # fmt: skip
        for p, f in outs:
            writer.write(p, f)
        writer.close()

    _, *t_encode = _timed(encode)
    outs.clear()  # free the frames before the pipelined run
    decoded.clear()
    job, settings = VideoJob(clip, out, named=True), VideoSettings()
    result, *t_total = _timed(lambda: upscale_video(job, up, settings, overwrite=True))
    assert result.frames == info.frames
    return {"frames": (info.frames, info.frames), "decode": tuple(t_decode),
            "network": tuple(t_network), "encode": tuple(t_encode),
            "pipelined": tuple(t_total)}  # fmt: skip


def speed(
    frames: int,
    tmp: Path,
    rows: Sequence[tuple[str, int, int]] = SPEED_ROWS,
    precision: str = "half",
) -> None:
    import torch

    from resrgan.infer.precision import resolve_precision

    dtype = resolve_precision(precision, torch.device("cpu"))
    print(f"\n## speed (CPU, {precision}: {dtype}, no tiling, torch threads "
          f"{torch.get_num_threads()}; wall / CPU of all threads)\n")  # fmt: skip
    print(
        "| model | input | frames | decode ms/frame | network ms/frame | encode ms/frame | "
        "decode + encode vs network | pipelined fps | pipelined vs network alone |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for model, w, h in rows:
        n = max(3, frames // 2) if model == "RealESRGAN_x4plus" else frames
        clip = make_clip(tmp / f"{model}_{w}x{h}.mp4", w, h, n)
        s = stage_times(model, clip, tmp / f"{model}_{w}x{h}_out.mp4", precision)
        k = s["frames"][0]

        def ms(stage: str, s: dict[str, tuple[float, float]] = s, k: int = k) -> str:
            return " / ".join(f"{1000 * v / k:.0f}" for v in s[stage])

        io = [
            100 * (s["decode"][i] + s["encode"][i]) / s["network"][i] for i in (0, 1)
        ]  # wall, CPU
        over = [100 * (s["pipelined"][i] - s["network"][i]) / s["network"][i] for i in (0, 1)]
        print(f"| {model} | {w}x{h} | {k} | {ms('decode')} | {ms('network')} | {ms('encode')} | "
              f"{io[0]:.1f} / {io[1]:.1f} % | {k / s['pipelined'][0]:.3f} | "
              f"{over[0]:+.1f} / {over[1]:+.1f} % |", flush=True)  # fmt: skip


def _child(argv: list[str]) -> dict[str, Any]:
    """Run this script's hidden ``--child`` mode; returns its JSON line plus ``wall`` (seconds
    from starting the process to its exit: Python start-up, imports and model loading included),
    ``cpu`` (user + system seconds of the child and the processes it waited for, e.g. the
    original's ffmpeg) and ``start`` (``time.time()`` at the start)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    done = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True,
                          text=True, env=env)  # fmt: skip
    wall = time.time() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {**json.loads(lines[-1]), "wall": wall, "cpu": cpu, "start": start}


def _steady(r: dict[str, Any]) -> tuple[float, float]:
    """(frames/s between the first and the last frame's network pass, start-up seconds: the
    wall time not explained by the frames at that rate: start, model load, probe, join, exit)."""
    ft = r["frame_times"]
    if len(ft) < 2 or ft[-1] <= ft[0]:
        return float("nan"), float("nan")
    fps = (len(ft) - 1) / (ft[-1] - ft[0])
    return fps, r["wall"] - len(ft) / fps


def memory(frames: int, tmp: Path, model: str) -> None:
    """Peak RSS of upscale_video over clips of 1x, 4x and 16x ``frames`` frames, then 4x again
    (the difference between the two 4x runs is the noise)."""
    print(f"\n## peak RSS against clip length ({model}, 160x90 -> 640x360, libx264 CRF 18 "
          "medium, 10 s segments; allocator as the resrgan CLI)\n")  # fmt: skip
    print("| frames | segments | wall s | RSS MB after 1/4, 1/2, 3/4, all frames | peak RSS MB |")
    print("|---:|---:|---:|---|---:|")
    for n in (frames, 4 * frames, 16 * frames, 4 * frames):
        clip = tmp / f"mem{n}.mp4"
        if not clip.exists():
            make_clip(clip, 160, 90, n)
        r = _child(["ours", str(clip), str(tmp / f"mem{n}_out.mp4"), model])
        if "error" in r:
            print(f"| {n} | failed: {r['error']} | | | |")
            continue
        segs = r["segments"]
        curve = ", ".join(str(v) for v in r["curve"])
        print(f"| {n} | {segs} | {r['wall']:.1f} | {curve} | {r['rss_mb']:.0f} |", flush=True)


def _fetch_wheels(src: Path) -> list[Path]:
    src.mkdir(parents=True, exist_ok=True)
    wheels = sorted(src.glob("ffmpeg_python-*.whl")) + sorted(src.glob("future-*.whl"))
    if len(wheels) < 2:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               *EXTRA_WHEELS, "-d", str(src)]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True)
        wheels = sorted(src.glob("ffmpeg_python-*.whl")) + sorted(src.glob("future-*.whl"))
    return wheels


def run_original(
    script: Path,
    clip: Path,
    out_dir: Path,
    model: str,
    src: Path,
    stamps: list[float],
    fp32: bool = True,
) -> float:
    """The original ``inference_video`` on ``clip`` (see the module doc); returns seconds.
    ``stamps`` gets ``time.time()`` after every ``RealESRGANer.enhance`` (one per frame).
    ``fp32=False`` is the script's default (half precision: fp16, also on a CPU)."""
    import argparse as ap

    import torch

    sys.path.insert(0, str(BENCH))
    import compare_original as co

    from resrgan.weights.zoo import load_zoo_model

    for wheel in _fetch_wheels(src):
        sys.path.insert(0, str(wheel))
    bs_root, rg_root = co.fetch(src)
    archs, realesrganer = co.import_original(bs_root, rg_root)
    sys.modules["realesrgan"].RealESRGANer = realesrganer  # type: ignore[attr-defined]
    utils = types.ModuleType("basicsr.utils")
    utils.__path__ = []  # type: ignore[attr-defined]
    download = types.ModuleType("basicsr.utils.download_util")

    def no_download(url: str, **kwargs: Any) -> str:
        raise RuntimeError(f"the bench does not download ({url}); weights/ is prepared")

    download.load_file_from_url = no_download  # type: ignore[attr-defined]
    sys.modules["basicsr.utils"], sys.modules["basicsr.utils.download_util"] = utils, download
    torch.cuda.synchronize = lambda *a, **k: None  # the original is CUDA-only without this
    enhance = realesrganer.enhance

    def timed_enhance(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = enhance(self, *args, **kwargs)
        stamps.append(time.time())
        return out

    realesrganer.enhance = timed_enhance
    net, _info = load_zoo_model(model)
    work = out_dir / "orig_cwd"
    (work / "weights").mkdir(parents=True, exist_ok=True)
    torch.save({"params_ema": net.state_dict()}, work / "weights" / f"{model}.pth")
    spec = importlib.util.spec_from_file_location("orig_video", script)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    args = ap.Namespace(
        input=str(clip), model_name=model, output=str(out_dir), denoise_strength=0.5, outscale=4,
        suffix="orig", tile=0, tile_pad=10, pre_pad=0, face_enhance=False, fp32=fp32, fps=None,
        ffmpeg_bin="ffmpeg", extract_frame_first=False, num_process_per_gpu=1,
        alpha_upsampler="realesrgan", ext="auto", video_name=clip.stem,
    )  # fmt: skip
    os.chdir(work)
    t = time.perf_counter()
    mod.inference_video(args, str(out_dir / f"{clip.stem}_orig.mp4"), device=torch.device("cpu"))
    return time.perf_counter() - t


def original(
    frames: int,
    tmp: Path,
    script: Path | None,
    src: Path,
    reps: int,
    sizes: list[tuple[int, int]],
    precisions: list[str],
    original_precisions: list[str],
) -> None:
    print("\n## against the original inference_realesrgan_video.py (realesr-animevideov3, CPU)\n")
    if script is None or not script.is_file():
        print(f"skipped: --original-script not given or missing ({script}); the script is in the "
              "Real-ESRGAN repository, not in the realesrgan wheel")  # fmt: skip
        return
    if shutil.which("ffmpeg") is None:
        print("skipped: the original needs the ffmpeg binary (apt-get install ffmpeg)")
        return
    print("wall: process start to exit; CPU: user + system of the process and its ffmpeg "
          "children; fps: between the first and the last frame's network pass; start-up: wall "
          "minus frames / fps. Sides alternate; each run is its own row.\n")  # fmt: skip
    print("| input | frames | run | side | wall s | CPU s | start-up s | fps | fps / original's "
          "| wall: original / this |")  # fmt: skip
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    sides = [*(f"original {p}" for p in original_precisions), *(f"ours {p}" for p in precisions)]
    for w, h in sizes:
        clip = make_clip(tmp / f"orig_{w}x{h}.mp4", w, h, frames)
        for rep in range(reps):
            base: dict[str, Any] = {}
            for side in sides:
                out = tmp / f"{side.replace(' ', '_')}_{w}x{h}"
                out.mkdir(exist_ok=True)
                argv = [side.split()[0], str(clip), str(out / "o.mp4"), "realesr-animevideov3"]
                extra = [side.split()[1]]
                if side.startswith("original"):
                    extra += [str(script), str(src)]
                r = _child([*argv, *extra])
                if "error" in r:
                    print(f"| {w}x{h} | {frames} | {rep + 1} | {side} | failed: {r['error']} |")
                    return
                fps, startup = _steady(r)
                if not base:  # the first original row is the reference
                    base = {"fps": fps, "wall": r["wall"]}
                print(f"| {w}x{h} | {frames} | {rep + 1} | {side} | {r['wall']:.1f} | "
                      f"{r['cpu']:.1f} | {startup:.1f} | {fps:.3f} | {fps / base['fps']:.2f}x | "
                      f"{base['wall'] / r['wall']:.2f}x |", flush=True)  # fmt: skip


def _model(name: str) -> Any:
    """A zoo name, or "compact-tiny": a random 8-feature, 2-conv SRVGGNetCompact (x4) whose
    network time is negligible, so long clips measure the pipeline's own memory quickly."""
    if name != "compact-tiny":
        return name
    import torch

    from resrgan.nets import SRVGGNetCompact

    torch.manual_seed(0)
    return SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4, act_type="prelu")


def child(argv: list[str]) -> None:
    """One side in this process: ``SIDE CLIP OUT MODEL PRECISION [SCRIPT SRC]``. Prints a JSON
    line with the wall seconds of the video call, peak RSS and the wall clock (``time.time()``)
    at the end of every frame's network pass, from which the parent takes start-up and fps."""
    from resrgan.allocator import reuse_freed_memory

    reuse_freed_memory()  # as the resrgan console script does (resrgan.cli.entry)
    side, clip, out = argv[0], Path(argv[1]), Path(argv[2])
    model = argv[3]
    stamps: list[float] = []
    curve: list[int] = []  # RSS MB after 1/4, 1/2, 3/4 and all of the frames (ours)
    segments = 0
    if side == "original":
        secs = run_original(
            Path(argv[5]), clip, out.parent, model, Path(argv[6]), stamps, fp32=argv[4] == "fp32"
        )
    else:
        from resrgan import Upscaler
        from resrgan.infer.video import VideoJob, VideoSettings, upscale_video

        precision = argv[4] if len(argv) > 4 else "fp32"
        t = time.perf_counter()
        up = Upscaler(_model(model), tile=0, precision=precision)
        seen = [0]

        def progress(done: int, total: int) -> None:
            if done > seen[0]:
                seen[0] = done
                stamps.append(time.time())
                if done in (total // 4, total // 2, 3 * total // 4, total):
                    curve.append(round(_rss_mb()))

        settings = VideoSettings()
        result = upscale_video(VideoJob(clip, out, named=True), up, settings, overwrite=True,
                               on_progress=progress)  # fmt: skip
        segments = result.segments
        secs = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": secs, "rss_mb": rss, "frame_times": stamps, "curve": curve,
                      "segments": segments}))  # fmt: skip


def _rss_mb() -> float:
    """Resident memory now (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="speed,memory,original", help="comma-separated sections")
    p.add_argument("--frames", type=int, default=16, help="frames per clip (default 16)")
    p.add_argument("--quick", action="store_true", help="4 frames per clip")
    p.add_argument(
        "--rows",
        default=None,
        help="speed rows as MODEL:WxH,... (default: "
        + ",".join(f"{m}:{w}x{h}" for m, w, h in SPEED_ROWS)
        + ")",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--original-script", type=Path, default=None, help="the original's script")
    p.add_argument("--src", type=Path, default=Path(tempfile.gettempdir()) / "resrgan_original")
    p.add_argument("--reps", type=int, default=1, help="original/ours runs each, best kept")
    p.add_argument("--sizes", default="320x180,640x360", help="input sizes of the original rows")
    p.add_argument(
        "--precisions",
        default="fp32,half",
        help="our precisions in the original rows (fp32,half: the CLI's default)",
    )
    p.add_argument(
        "--precision", default="half", help="precision of the speed rows (half: the CLI's default)"
    )
    p.add_argument(
        "--original-precisions",
        default="fp32",
        help="the original's precisions (fp32; fp16: its default, ~50x slower on a CPU); the "
        "first is the reference of the ratios",
    )
    p.add_argument(
        "--memory-model",
        default="realesr-animevideov3",
        help="model of the memory rows; compact-tiny: a random tiny net (fast long clips)",
    )
    args = p.parse_args()
    frames = 4 if args.quick else args.frames
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory(prefix="resrgan-bench-video-") as tmp:
        if "speed" in only:
            rows = SPEED_ROWS
            if args.rows:
                pairs = [r.rsplit(":", 1) for r in args.rows.split(",")]
                sizes = [(m, wh.split("x")) for m, wh in pairs]
                rows = tuple((m, int(w), int(h)) for m, (w, h) in sizes)
            speed(frames, Path(tmp), rows, args.precision)
        if "memory" in only:
            memory(frames, Path(tmp), args.memory_model)
        if "original" in only:
            pairs = [s.split("x") for s in args.sizes.split(",")]
            sizes = [(int(w), int(h)) for w, h in pairs]
            precisions = args.precisions.split(",")
            original(
                frames,
                Path(tmp),
                args.original_script,
                args.src,
                args.reps,
                sizes,
                precisions,
                args.original_precisions.split(","),
            )


if __name__ == "__main__":
    main()
