"""Inference benchmarks: speed against a matmul roofline, tiling cost and quality, bf16,
CLI start-up, memory.

    python bench/infer.py                 # everything (512x512 x4plus fp32 takes minutes)
    python bench/infer.py --quick         # 128x128 only, fewer tile settings
    python bench/infer.py --only speed,tiles,bf16,cli,memory --threads 2
    python bench/infer.py --only order --threads 2   # x4plus: whole image vs bands, 128-1024
    python bench/infer.py --only products            # the Winograd products' GEMMs vs a matmul

Each speed row runs in its own subprocess so that its peak RSS (ru_maxrss) is its own. GFLOP/s
counts the network's convolutions (2 FLOP per multiply-add; RealESRGAN_x4plus is 35.8 MFLOP per
input pixel) over the pixels actually computed (tiles include their context and blend bands).
On the CPU in fp32, the engine runs RRDBNet's dense blocks as Winograd F(4x4, 3x3)
(``resrgan.infer.winograd``) with a quarter of the multiplies; GFLOP/s still counts the direct
convolutions' FLOP (an effective rate), so it can exceed the matmul's. The 128x128 fp32 x4plus
rows also time the same upscale with direct convolutions (an engine with ``winograd=False``).
Like the ``resrgan`` CLI, the bench keeps freed memory for reuse (``resrgan.allocator``) unless
``--default-malloc`` is given.
Times are the best of several runs where runs are short (the matmul: of 10, before and after each
row's runs, in the row's process; a 128x128 upscale: of 3), so that ratios compare capabilities
rather than the noise of a shared machine. Needs the official models offline
(``resrgan.weights.zoo``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RESRGAN_SHARED", REPO.parent / "shared")) / "data" / "real_lr"
MODELS = ("RealESRGAN_x4plus", "realesr-animevideov3")


def conv_flop(m: object, out: object) -> int:
    """FLOP of one Conv2d call that produced ``out`` (2 per multiply-add)."""
    k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)  # type: ignore[attr-defined]
    return 2 * out.numel() * k  # type: ignore[attr-defined]


def alternate(fns: dict, reps: int) -> dict:
    """Each of ``fns`` (name -> no-argument function) ``reps`` times, in turn, so that all meet the
    machine in the same state; per name, the best time and that run's result."""
    best: dict = {}
    for _ in range(reps):
        for name, fn in fns.items():
            t = time.perf_counter()
            out = fn()
            secs = time.perf_counter() - t
            if name not in best or secs < best[name][0]:
                best[name] = (secs, out)
    return best


def conv_flops_per_pixel(net: object, scale_probe: int = 32) -> float:
    """FLOP per input pixel of every Conv2d, counted with forward hooks on a probe input."""
    import torch

    total = [0]

    def hook(m: torch.nn.Conv2d, _i: object, out: torch.Tensor) -> None:
        total[0] += conv_flop(m, out)

    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    dtype = next(net.parameters()).dtype
    with torch.inference_mode(), torch.autocast("cpu", dtype, enabled=dtype != torch.float32):
        net(torch.zeros(1, 3, scale_probe, scale_probe))
    for h in hs:
        h.remove()
    return total[0] / (scale_probe * scale_probe)


def matmul_gflops(dtype_name: str = "fp32", n: int = 2048, reps: int = 10) -> float:
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):  # best of reps: the machine's capability, not its noise
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def photo(h: int, w: int, y: int = 0, x: int = 0) -> object:
    """A real-photo crop at (y, x) (tiled from OST_009.png if needed), RGB uint8."""
    import cv2
    import numpy as np

    img = cv2.cvtColor(cv2.imread(str(DATA / "OST_009.png")), cv2.COLOR_BGR2RGB)[y:, x:]
    reps = (-(-h // img.shape[0]), -(-w // img.shape[1]), 1)
    return np.ascontiguousarray(np.tile(img, reps)[:h, :w])


def psnr(a: object, b: object) -> float:
    import numpy as np

    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def one(model: str, size: int, tile: int, precision: str, threads: int) -> dict:
    """One speed row (run in a subprocess)."""
    import torch

    torch.set_num_threads(threads)
    from resrgan.infer.engine import Engine
    from resrgan.infer.upscaler import Upscaler
    from resrgan.nets import RRDBNet

    up = Upscaler(model, tile=tile, precision=precision)
    fpp = conv_flops_per_pixel(up.model)
    img = photo(size, size)
    # warm-up: oneDNN creates kernels per input shape (0.5-1 s for a small image), so small inputs
    # are run once at the same size; for large ones that cost is small next to the run itself
    up.upscale(img if size <= 128 else photo(64, 64))
    mm = matmul_gflops("fp32")
    # best of 3 where a run is short, as the matmul
    secs = alternate({"row": lambda: up.upscale(img)}, 3 if size <= 128 else 1)["row"][0]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before anything else here
    untiled = None
    if tile or precision != "fp32":  # the untiled fp32 time to compare with, measured next to
        # this row's (interleaved where runs are short): rows in separate processes meet the
        # machine at different speeds
        flat = Upscaler(model, tile=0, precision="fp32")
        flat.upscale(img if size <= 128 else photo(64, 64))
        runs = {"untiled": lambda: flat.upscale(img)}
        if size <= 128:
            runs["row"] = lambda: up.upscale(img)
        best = alternate(runs, 3 if size <= 128 else 1)
        untiled = best["untiled"][0]
        secs = min(secs, best.get("row", (secs,))[0])
        del flat, runs, best
    direct = None
    if size <= 128 and tile == 0 and precision == "fp32" and isinstance(up.model, RRDBNet):
        # RRDBNet's Winograd dense blocks against its direct convolutions, interleaved
        plain = Upscaler(model, tile=tile, precision=precision)
        plain.engine = Engine(
            plain.model, device=plain.device, dtype=plain.dtype, tile=0, winograd=False
        )
        plain.upscale(img)
        best = alternate(
            {"winograd": lambda: up.upscale(img), "direct": lambda: plain.upscale(img)}, 3
        )
        secs = min(secs, best["winograd"][0])
        direct = (best["direct"][0], psnr(best["winograd"][1], best["direct"][1]))
    mm = max(mm, matmul_gflops("fp32"))  # the reference, measured around this row's runs
    frac = up.computed_fraction(size, size, tile)  # its own plan (tiles rounded to its blocks)
    return {
        "seconds": secs,
        "computed_fraction": frac,
        "gflops": fpp * size * size * frac / secs / 1e9,
        "mflop_per_px": fpp / 1e6,
        "peak_rss_mb": rss,
        "matmul_gflops": mm,
        "untiled_seconds": untiled,
        "direct_seconds": direct[0] if direct else None,
        "direct_psnr": direct[1] if direct else None,
    }


_ONE_FLAGS: list[str] = []  # passed on to the row subprocesses


def run_one(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *_ONE_FLAGS, "--one", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def section_speed(sizes: list[int], threads: int) -> None:
    mm = matmul_gflops("fp32")
    mmb = matmul_gflops("bf16")
    print(f"\n## Speed ({threads} threads; matmul 2048^2: fp32 {mm:.0f} GFLOP/s, bf16 {mmb:.0f})\n")
    print(
        "| model | input | tile | precision | s | computed/image px | GFLOP/s | vs fp32 matmul "
        "| direct convs: s (Winograd speed-up; PSNR) | tiled / (untiled x computed) "
        "| peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for model in MODELS:
        for size in sizes:
            for tile, prec in ((0, "fp32"), (64, "fp32"), (0, "bf16")):
                r = run_one([model, str(size), str(tile), prec, str(threads)])
                if "error" in r:
                    print(f"| {model} | {size} | {tile} | {prec} | error: {r['error']} |")
                    continue
                eff = ""
                if prec == "fp32" and r.get("untiled_seconds"):
                    eff = f"{r['seconds'] / (r['untiled_seconds'] * r['computed_fraction']):.2f}"
                elif r.get("untiled_seconds"):
                    eff = f"bf16 speed-up {r['untiled_seconds'] / r['seconds']:.2f}x"
                ds = r.get("direct_seconds")
                ceil = (
                    f"{ds:.2f} ({ds / r['seconds']:.2f}x; {r['direct_psnr']:.1f} dB)" if ds else ""
                )
                print(
                    f"| {model} | {size}x{size} | {tile or '-'} | {prec} | {r['seconds']:.2f} "
                    f"| {r['computed_fraction']:.2f} | {r['gflops']:.1f} "
                    f"| {r['gflops'] / r['matmul_gflops']:.0%} of {r['matmul_gflops']:.0f} "
                    f"| {ceil} | {eff} | {r['peak_rss_mb']:.0f} |",
                    flush=True,
                )


def section_tiles(quick: bool, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    from resrgan.infer.upscaler import Upscaler
    from resrgan.weights.zoo import load_zoo_model

    net, _ = load_zoo_model("RealESRGAN_x4plus")
    img = photo(128, 128, 200, 150)
    ref = Upscaler(net, tile=0).upscale(img)
    settings = [(10, 0), (10, 8), (10, 16), (10, 24), (20, 0), (20, 8), (32, 0)]
    if not quick:
        settings += [(10, 32), (16, 16), (40, 0)]
    print("\n## Tiling quality: RealESRGAN_x4plus, OST_009 crop 128x128 at (200, 150), tile 64\n")
    print("| tile_pad | overlap | PSNR dB | computed px / image px (128^2) | same for 1024^2 |")
    print("|---|---|---|---|---|")
    for pad, ov in settings:
        up = Upscaler(net, tile=64, tile_pad=pad, tile_overlap=ov)
        out = up.upscale(img)
        f128, f1k = up.computed_fraction(128, 128, 64), up.computed_fraction(1024, 1024, 64)
        note = " (original: hard crop)" if ov == 0 and pad == 10 else ""
        print(f"| {pad} | {ov}{note} | {psnr(out, ref):.2f} | {f128:.2f} | {f1k:.2f} |", flush=True)


def section_bf16(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    from resrgan.infer.upscaler import Upscaler

    print("\n## bf16 vs fp32 on CPU (autocast; RRDBNet trunk kept fp32), 128x128 photo crop\n")
    print(
        "| model | fp32 s | bf16 s | speed-up | PSNR bf16 vs fp32 dB "
        "| matmul fp32 / bf16 GFLOP/s (around the runs) |"
    )
    print("|---|---|---|---|---|---|")
    img = photo(128, 128)
    for model in MODELS:
        ups = {prec: Upscaler(model, tile=0, precision=prec) for prec in ("fp32", "bf16")}
        for up in ups.values():  # warm-up at this size: oneDNN builds its kernels per shape
            up.upscale(img)
        # the machine's bf16 (AMX) throughput moves more than its fp32 one: 700-2030 GFLOP/s
        # on one day; the matmuls around the runs say which state the ratio was measured in
        mm = [matmul_gflops("fp32"), matmul_gflops("bf16")]
        res = alternate({prec: (lambda u=up: u.upscale(img)) for prec, up in ups.items()}, 3)
        mm = [max(mm[0], matmul_gflops("fp32")), max(mm[1], matmul_gflops("bf16"))]
        a, b = res["fp32"], res["bf16"]
        print(
            f"| {model} | {a[0]:.2f} | {b[0]:.2f} | {a[0] / b[0]:.2f}x | {psnr(b[1], a[1]):.2f} "
            f"| {mm[0]:.0f} / {mm[1]:.0f} |",
            flush=True,
        )


def section_cli() -> None:
    import tempfile

    import cv2

    def wall(cmd: list[str]) -> float:
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        return time.perf_counter() - t

    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "small.png"
        cv2.imwrite(str(src), cv2.cvtColor(photo(64, 64), cv2.COLOR_RGB2BGR))  # type: ignore[arg-type]

        def resrgan(k: int) -> list[str]:  # a fresh output folder: existing outputs are skipped
            out = str(Path(d) / f"out{k}")
            return [sys.executable, "-m", "resrgan", "upscale", "-i", str(src), "-o", out,
                    "-n", "realesr-animevideov3"]  # fmt: skip

        wall(resrgan(0))  # the first run may convert the model into the cache
        key = "resrgan upscale (64x64, animevideov3)"
        runs: dict[str, list[float]] = {"import torch": [], "import resrgan": [], key: []}
        for k in range(1, 4):
            runs["import torch"].append(wall([sys.executable, "-c", "import torch"]))
            runs["import resrgan"].append(wall([sys.executable, "-c", "import resrgan"]))
            runs[key].append(wall(resrgan(k)))
            assert any((Path(d) / f"out{k}").iterdir()), "resrgan upscale wrote nothing"
    print("\n## Start-up (wall time, median of 3, subprocess)\n")
    print("| command | s |")
    print("|---|---|")
    for k, v in runs.items():
        print(f"| {k} | {sorted(v)[1]:.2f} |")


def section_memory(threads: int) -> None:
    """Peak RSS for a large image through the band assembler, with a zero-cost nearest 'network'."""
    code = f"""
import resource, time, numpy as np, torch, torch.nn.functional as F
torch.set_num_threads({threads})
from resrgan.infer.upscaler import Upscaler
class Nearest(torch.nn.Module):
    scale = 4
    def forward(self, x): return F.interpolate(x, scale_factor=4, mode='nearest')
img = np.full((8000, 8000, 3), 128, np.uint8)
t = time.perf_counter()
out = Upscaler(Nearest(), tile=256).upscale(img)
print(out.shape, round(time.perf_counter() - t, 1),
      round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    print("\n## Memory: 8000x8000 RGB -> 32000x32000 at tile 256 (nearest x4 stand-in network)\n")
    if r.returncode != 0:
        print("failed:", r.stderr.strip().splitlines()[-1:])
        return
    shape, secs, rss = r.stdout.strip().rsplit(" ", 2)[0], *r.stdout.split()[-2:]
    print("| output | s | peak RSS MB | input + output arrays MB |")
    print("|---|---|---|---|")
    print(f"| {shape} | {secs} | {rss} | {(8000 * 8000 * 3 + 32000 * 32000 * 3) / 2**20:.0f} |")


def section_order(sizes: list[int], threads: int, reps: int, blocks: int | None) -> None:
    """fp32 RealESRGAN_x4plus (Winograd trunk) in the whole-image order and in the engine's
    bands (``resrgan.infer.fastrrdb.BAND_TILES``), alternately in one process: effective GFLOP/s
    over the image's own pixels by wall time and by the process's CPU time (steadier on a shared
    machine), and each size's rate relative to the smallest size's in the same order.
    ``blocks``: only the first N of the 23 RRDBs (the trunk's blocks all cost the same per pixel)
    to make 1024x1024 affordable on a slow machine; the tail's share is then larger."""
    import copy

    import torch

    torch.set_num_threads(threads)
    from resrgan.infer import fastrrdb
    from resrgan.weights.zoo import load_zoo_model

    net, _ = load_zoo_model("RealESRGAN_x4plus")
    net = net.float().eval().to(memory_format=torch.channels_last)
    if blocks is not None:
        net = copy.deepcopy(net)
        net.body = net.body[:blocks]
    fpp = conv_flops_per_pixel(net)
    orders = {"whole image": None, f"bands of {fastrrdb.BAND_TILES} tiles": fastrrdb.BAND_TILES}
    trunk = f"{len(net.body)} of 23 RRDBs" if blocks is not None else "23 RRDBs"
    print(
        f"\n## Execution order: RealESRGAN_x4plus fp32, Winograd trunk ({trunk}, "
        f"{fpp / 1e6:.1f} MFLOP per px), {threads} threads, best of {reps}, alternately\n"
    )
    print(
        "| input | order | band rows | wall s | GFLOP/s | vs same order "
        f"{sizes[0]}x{sizes[0]} | CPU s | GFLOP per CPU s | vs same order {sizes[0]}x{sizes[0]} "
        "| max abs diff to whole image |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    base: dict[str, tuple[float, float]] = {}
    for size in sizes:
        x = torch.from_numpy(photo(size, size)).permute(2, 0, 1)[None].float().div(255)
        x = x.contiguous(memory_format=torch.channels_last)

        def run(bt: int | None, x: torch.Tensor = x) -> tuple[float, torch.Tensor]:
            cpu = time.process_time()
            out = fastrrdb.forward(net, x, winograd=True, residual_dtype=None, band_tiles=bt)
            return time.process_time() - cpu, out

        if size <= 128:  # warm-up: oneDNN builds its kernels per shape
            for bt in orders.values():
                run(bt)
        cpu_best: dict[str, float] = {}
        wall_best: dict[str, tuple[float, torch.Tensor]] = {}
        for _ in range(reps):  # alternately; per order the best wall and the best CPU time
            best = alternate({name: (lambda bt=bt: run(bt)) for name, bt in orders.items()}, 1)
            for name, (secs, (cpu, out)) in best.items():
                cpu_best[name] = min(cpu_best.get(name, cpu), cpu)
                if name not in wall_best or secs < wall_best[name][0]:
                    wall_best[name] = (secs, out)
        ref = wall_best["whole image"][1]
        for name, bt in orders.items():
            secs, out = wall_best[name]
            gflop = fpp * size * size / 1e9
            rate, cpu_rate = gflop / secs, gflop / cpu_best[name]
            b = base.setdefault(name, (rate, cpu_rate))
            rows = min(fastrrdb.band_rows(size, bt) or size, -(-size // 4))
            print(
                f"| {size}x{size} | {name} | {rows} | {secs:.2f} | {rate:.0f} | {rate / b[0]:.3f} "
                f"| {cpu_best[name]:.2f} | {cpu_rate:.0f} | {cpu_rate / b[1]:.3f} "
                f"| {float((out - ref).abs().max()):.1e} |",
                flush=True,
            )


def section_products(threads: int) -> None:
    """The Winograd trunk's products alone (``TileMaps.conv``'s ``torch.bmm``: 36 products of a
    (Cout, Cin) kernel with a strided (Cin, tiles) slice of the transforms), for the five
    convolutions of an x4plus dense block, against a 2048² matmul with the same threads: how much
    of the machine's matmul rate these thin GEMMs (Cout 32 or 64) get. They are ~55 % of the
    trunk's time, so they bound what the Winograd trunk can reach on a machine."""
    import torch

    convs = ((32, 64), (32, 96), (32, 128), (32, 160), (64, 192))  # (Cout, Cin)
    print("\n## Winograd products (x4plus dense block) vs fp32 matmul\n")
    print("| threads | trunk | tiles | Cout x Cin: GFLOP/s | block | vs 2048² matmul |")
    print("|---|---|---|---|---|---|")
    for th in sorted({1, threads}):
        torch.set_num_threads(th)
        mm = matmul_gflops("fp32")
        for side in (128, 512):
            tiles = (side // 4) ** 2
            u_all = torch.randn(36, 192, tiles)
            rates, flop, secs = [], 0.0, 0.0
            for co, ci in convs:
                w, u, out = torch.randn(36, co, ci), u_all[:, :ci], torch.empty(36, co, tiles)
                best = alternate({"bmm": lambda w=w, u=u, out=out: torch.bmm(w, u, out=out)}, 10)
                f = 2 * 36 * co * ci * tiles
                rates.append(f"{co}x{ci}: {f / best['bmm'][0] / 1e9:.0f}")
                flop, secs = flop + f, secs + best["bmm"][0]
            rate = flop / secs / 1e9
            print(f"| {th} | {side}x{side} | {tiles} | {', '.join(rates)} | {rate:.0f} "
                  f"| {rate / mm:.0%} of {mm:.0f} |", flush=True)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument(
        "--only", default="speed,tiles,bf16,cli,memory", help="sections; also: order, products"
    )
    p.add_argument("--order-sizes", default="128,512,1024", help="input sizes of --only order")
    p.add_argument("--order-reps", type=int, default=2, help="runs per order and size (best of)")
    p.add_argument(
        "--order-blocks", type=int, default=None, help="--only order: the first N RRDBs only"
    )
    p.add_argument("--one", nargs=5, metavar=("MODEL", "SIZE", "TILE", "PRECISION", "THREADS"))
    p.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave glibc's allocator as it is (default: as the resrgan CLI, freed memory is "
        "kept for reuse, resrgan.allocator)",
    )
    a = p.parse_args()
    if a.default_malloc:
        _ONE_FLAGS.append("--default-malloc")
    else:
        from resrgan.allocator import reuse_freed_memory

        reuse_freed_memory()
    if a.one:
        m, size, tile, prec, threads = a.one
        print(json.dumps(one(m, int(size), int(tile), prec, int(threads))))
        return
    import torch

    print(
        f"# bench/infer.py  torch {torch.__version__}, {a.threads} threads, "
        f"cpu capability {torch.backends.cpu.get_cpu_capability()}, "
        f"malloc: {'default' if a.default_malloc else 'freed memory reused (as the CLI)'}"
    )
    only = set(a.only.split(","))
    if "speed" in only:
        section_speed([128] if a.quick else [128, 512], a.threads)
    if "tiles" in only:
        section_tiles(a.quick, a.threads)
    if "bf16" in only:
        section_bf16(a.threads)
    if "cli" in only:
        section_cli()
    if "memory" in only:
        section_memory(a.threads)
    if "order" in only:
        sizes = [int(v) for v in a.order_sizes.split(",")]
        section_order(sizes, a.threads, a.order_reps, a.order_blocks)
    if "products" in only:
        section_products(a.threads)


if __name__ == "__main__":
    main()
