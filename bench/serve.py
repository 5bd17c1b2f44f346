"""``resrgan serve`` against the CLI: a 256x256 photo with realesr-animevideov3.

    python bench/serve.py                # 5 rounds
    python bench/serve.py --rounds 9 --model realesr-animevideov3

Each round, in turn:

* **CLI**: ``python -m resrgan upscale -i photo -n MODEL`` as a subprocess: start-up, imports, model
  load, upscale, PNG write; wall time until it exits.
* **server, first image**: a fresh ``python -m resrgan serve`` is started and waited for until it
  reports ready (its workers have imported torch; no model is loaded yet), then one upload is timed
  from the start of the POST to the last byte of the result PNG: upload, queue, model load,
  upscale, PNG write, long-poll wake-up and the download.
* **server, second image**: another 256x256 photo through the same server (the model is loaded).

The server is then stopped (SIGINT). Rows report the best and the median of the rounds; the targets
of issue 16 are checked on the best times: first image <= CLI + 0.3 s, second image < CLI. Needs the
model offline (``resrgan models``) and ../shared/data/real_lr.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RESRGAN_SHARED", REPO.parent / "shared")) / "data" / "real_lr"
PHOTO = "ADE_val_00000114.jpg"  # 256x256
SECOND = "OST_009.png"  # 640x448: its top-left 256x256 is the second photo


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(photo: Path, model: str, out: Path) -> float:
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "resrgan", "upscale", "-i", str(photo), "-o", str(out)]
        + ["-n", model, "--overwrite"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - t


class Client:
    """Same-origin HTTP/1.1 on one keep-alive connection, as the page's fetches are."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"Origin": f"http://127.0.0.1:{port}"}

    def get(self, path: str) -> bytes:
        self.conn.request("GET", path, headers=self.headers)
        r = self.conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"GET {path}: {r.status} {body[:200]!r}")
        return body

    def upscale(self, photo: Path, model: str) -> tuple[float, dict]:
        """Seconds from the POST to the result's last byte, and the finished job."""
        boundary = secrets.token_hex(8)
        data = photo.read_bytes()
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\n{model}\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
                f'filename="{photo.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        headers = {**self.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}
        t = time.perf_counter()
        self.conn.request("POST", "/api/jobs", body=body, headers=headers)
        r = self.conn.getresponse()
        answer = json.loads(r.read())
        if r.status != 202 or "id" not in answer["files"][0]:
            raise RuntimeError(f"upload refused: {r.status} {answer}")
        job_id, version = answer["files"][0]["id"], -1
        while True:
            poll = json.loads(self.get(f"/api/jobs?ids={job_id}&since={version}&wait=20"))
            version, job = poll["version"], poll["jobs"][0]
            if job["state"] == "done":
                break
            if job["state"] in ("error", "gone"):
                raise RuntimeError(f"job failed: {job}")
        self.get(job["result"])
        return time.perf_counter() - t, job


def start_server(model: str, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "resrgan", "serve", "--port", str(port), "--model", model],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/api/health")
            if json.loads(c.getresponse().read())["ready"]:
                return proc
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the server did not get ready in 120 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)


def server_round(first: Path, second: Path, model: str) -> tuple[float, float, float, float]:
    port = free_port()
    proc = start_server(model, port)
    try:
        client = Client(port)
        t1, j1 = client.upscale(first, model)
        t2, j2 = client.upscale(second, model)
    finally:
        stop_server(proc)
    return t1, t2, j1["seconds"], j2["seconds"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--model", default="realesr-animevideov3")
    args = p.parse_args()
    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="resrgan-bench-serve-") as tmp:
        work = Path(tmp)
        first = DATA / PHOTO
        second = work / "second.png"
        Image.open(DATA / SECOND).convert("RGB").crop((0, 0, 256, 256)).save(second)
        assert Image.open(first).size == (256, 256), "the first photo must be 256x256"
        run_cli(first, args.model, work / "warm")  # converts the model into the cache once
        rows: dict[str, list[float]] = {k: [] for k in ("cli", "first", "second", "w1", "w2")}
        for i in range(args.rounds):
            rows["cli"].append(run_cli(first, args.model, work / "out"))
            t1, t2, w1, w2 = server_round(first, second, args.model)
            for k, v in zip(("first", "second", "w1", "w2"), (t1, t2, w1, w2), strict=True):
                rows[k].append(v)
            print(
                f"round {i + 1}: cli {rows['cli'][-1]:.2f} s, server first {t1:.2f} s, "
                f"second {t2:.2f} s",
                file=sys.stderr,
            )

    def best(k: str) -> float:
        return min(rows[k])

    cli = best("cli")
    print(
        f"\n{args.model}, 256x256 -> 1024x1024, best and median of {args.rounds} "
        "alternated rounds\n"
    )
    print("| path | best (s) | median (s) | best - CLI (s) | in the worker (s) |")
    print("|---|---:|---:|---:|---:|")
    for label, k, worker in (
        ("CLI `resrgan upscale` (subprocess, start-up included)", "cli", None),
        ("server, first image (model not loaded)", "first", "w1"),
        ("server, second image (model loaded)", "second", "w2"),
    ):
        diff = "" if k == "cli" else f"{best(k) - cli:+.2f}"
        inner = "" if worker is None else f"{min(rows[worker]):.2f}"
        print(f"| {label} | {best(k):.2f} | {statistics.median(rows[k]):.2f} | {diff} | {inner} |")
    ok1 = best("first") <= cli + 0.3
    ok2 = best("second") < cli
    print(
        f"\ntargets: first image <= CLI + 0.3 s: {'met' if ok1 else 'NOT met'}; "
        f"second image faster than the CLI: {'met' if ok2 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
