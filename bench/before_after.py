"""Two versions of resrgan in one process: outputs bit for bit and times, alternated.

The older version is a git revision, unpacked with ``git archive`` and imported under another
package name (its imports are relative), so both meet the machine in the same state::

    python bench/before_after.py --before 5242a99 \
        RealESRGAN_x4plus,128,0,fp32,4 realesr-animevideov3,128,0,fp32,5 \
        RealESRGAN_x4plus,128,0,bf16,4 RealESRGAN_x4plus,128,64,fp32,3 \
        RealESRGAN_x4plus,512,0,fp32,1

Each row is ``model,size,tile,precision,reps``: an ``Upscaler(model, tile=tile,
precision=precision)`` of each version upscales a size x size crop of OST_009.png (bench/infer.py's
``photo``), ``reps`` times each in turn (the best time counts). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALIAS = "resrgan_before"


def import_revision(rev: str, into: Path) -> object:
    """``resrgan.infer.upscaler`` of revision ``rev``, imported as ``resrgan_before``."""
    archive = into / "src.tar"
    with open(archive, "wb") as fh:
        subprocess.run(["git", "-C", str(REPO), "archive", rev, "src/resrgan"], stdout=fh,
                       check=True)  # fmt: skip
    with tarfile.open(archive) as t:
        t.extractall(into, filter="data")
    shutil.move(str(into / "src" / "resrgan"), str(into / ALIAS))
    sys.path.insert(0, str(into))
    return importlib.import_module(f"{ALIAS}.infer.upscaler")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="git revision to compare with")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("rows", nargs="+", metavar="MODEL,SIZE,TILE,PRECISION,REPS")
    a = p.parse_args()

    import numpy as np
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    sys.path.insert(0, str(REPO / "bench"))
    from infer import alternate, photo, psnr

    import resrgan
    import resrgan.infer.upscaler as new

    with tempfile.TemporaryDirectory() as tmp:
        old = import_revision(a.before, Path(tmp))
        print(f"before: {a.before}; after: the working tree ({Path(resrgan.__file__).parent}); "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
        print(
            "\n| model | input | tile | precision | before s | after s | after/before | outputs |"
        )
        print("|---|---|---|---|---|---|---|---|", flush=True)
        for row in a.rows:
            model, size, tile, prec, reps = row.split(",")
            n = int(size)
            img = photo(n, n)
            warm = img if n <= 128 else photo(64, 64)  # oneDNN builds kernels per shape
            ups = {
                "before": old.Upscaler(model, tile=int(tile), precision=prec),  # type: ignore[attr-defined]
                "after": new.Upscaler(model, tile=int(tile), precision=prec),
            }
            for up in ups.values():
                up.upscale(warm)
            best = alternate(
                {k: (lambda u=u, x=img: u.upscale(x)) for k, u in ups.items()}, int(reps)
            )
            (tb, ob), (ta, oa) = best["before"], best["after"]
            d = int(np.abs(ob.astype(np.int64) - oa).max())
            same = "identical" if d == 0 else f"max diff {d}, {psnr(ob, oa):.1f} dB"
            print(f"| {model} | {n}x{n} | {tile if tile != '0' else '-'} | {prec} | {tb:.2f} "
                  f"| {ta:.2f} | {ta / tb:.3f} | {same} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
