"""``resrgan serve`` through FastAPI's test client: good and hostile uploads, the queue, results.

Every hostile case asserts the status and the message, that nothing was written outside the
server's temporary folder, and that the server still upscales an image afterwards. The model is a
random-init SRVGGNetCompact (8 features, 2 convs): milliseconds per image.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import struct
import tempfile
import threading
import time
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")

import torch  # noqa: E402

with warnings.catch_warnings():  # starlette: "install httpx2 instead"
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

from resrgan.cli import main  # noqa: E402
from resrgan.infer.upscaler import Upscaler  # noqa: E402
from resrgan.nets import SRVGGNetCompact  # noqa: E402
from resrgan.serve import ModelChoice, Settings, create_app  # noqa: E402
from resrgan.serve.jobs import zoo_choices  # noqa: E402

BASE = "http://127.0.0.1:7860"
MB = 1024 * 1024
GENERATED = re.compile(r"^[0-9a-f]{32}\.upload$|^[\w-]{16}\.png$|^[0-9a-f]{24}\.zip$")


def tiny_net(denoise: float = 0.5) -> nn.Module:
    torch.manual_seed(0)
    return SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4)


class Gated(nn.Module):
    """The tiny net, but every forward waits for ``gate`` (to hold a job in the worker)."""

    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self.net = tiny_net()
        self.gate = gate
        self.scale = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.gate.wait(30)
        return self.net(x)


def png(h: int = 24, w: int = 32, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width x height`` RGB pixels, with one tiny IDAT: a bomb header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def multipart(files: list[tuple[str, bytes]], boundary: str = "resrgan-test-boundary") -> bytes:
    out = b""
    for name, data in files:
        out += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
                f'filename="{name}"\r\nContent-Type: image/png\r\n\r\n'
            ).encode()
            + data
            + b"\r\n"
        )
    return out + f"--{boundary}--\r\n".encode()


MULTIPART = "multipart/form-data; boundary=resrgan-test-boundary"


class Server:
    """A test client on an app whose temporary folder, the process's temp dir and cwd are all
    under ``root``, so anything written outside the work folder shows up."""

    def __init__(self, root: Path, client: TestClient, app: object) -> None:
        self.root = root
        self.client = client
        self.app = app
        self.queue = app.state.queue  # type: ignore[attr-defined]

    def post(self, files: list[tuple[str, bytes]], **fields: str) -> object:
        return self.client.post(
            "/api/jobs",
            files=[("files", (n, d, "image/png")) for n, d in files],
            data=fields,
        )

    def wait(self, job_id: str, timeout: float = 30.0) -> dict:
        """Long-poll until the job is done or failed."""
        version, end = -1, time.monotonic() + timeout
        while time.monotonic() < end:
            r = self.client.get(f"/api/jobs?ids={job_id}&since={version}&wait=5")
            body = r.json()
            version = body["version"]
            job = body["jobs"][0]
            if job["state"] in ("done", "error", "gone"):
                return job
        raise AssertionError(f"job {job_id} did not finish in {timeout} s")

    def upscale(self, data: bytes, name: str = "img.png") -> dict:
        r = self.post([(name, data)])
        assert r.status_code == 202, r.text
        return self.wait(r.json()["files"][0]["id"])

    def assert_still_serving(self) -> None:
        assert self.client.get("/api/health").json()["ready"] is True
        job = self.upscale(png(8, 8, seed=9))
        assert job["state"] == "done" and (job["width"], job["height"]) == (32, 32)

    def assert_nothing_outside(self) -> None:
        assert sorted(p.name for p in self.root.iterdir()) == ["cwd", "systmp", "work"]
        assert list((self.root / "cwd").iterdir()) == []
        assert list((self.root / "systmp").iterdir()) == []
        for p in (self.root / "work").rglob("*"):
            rel = p.relative_to(self.root / "work")
            if p.is_dir():
                assert str(rel) in ("uploads", "results", "zips"), rel
            else:
                assert rel.parts[0] in ("uploads", "results", "zips"), rel
                assert GENERATED.match(p.name), f"a name not generated by the server: {rel}"
        assert not list((self.root / "work" / "uploads").iterdir()), "an upload was left behind"


def _server(
    root: Path, monkeypatch: pytest.MonkeyPatch, models: list[ModelChoice], **kw: object
) -> Iterator[Server]:
    for d in ("cwd", "systmp", "work"):
        (root / d).mkdir()
    monkeypatch.chdir(root / "cwd")
    monkeypatch.setattr(tempfile, "tempdir", str(root / "systmp"))
    settings = Settings(work_dir=root / "work", devices=("cpu",), **kw)  # type: ignore[arg-type]
    app = create_app(settings, models=models)
    with TestClient(app, base_url=BASE) as client:
        client.get("/api/health")
        assert app.state.queue.ready.wait(30)
        yield Server(root, client, app)


@pytest.fixture
def make_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """make_server(models=None, **settings) -> Server; closed at the end of the test."""
    stack: list[Iterator[Server]] = []

    def make(models: list[ModelChoice] | None = None, **kw: object) -> Server:
        gen = _server(
            tmp_path, monkeypatch, models or [ModelChoice("tiny", "test", 4, tiny_net)], **kw
        )
        stack.append(gen)
        return next(gen)

    yield make
    for gen in stack:
        next(gen, None)


@pytest.fixture
def server(make_server: object) -> Server:
    return make_server(max_upload_bytes=1 * MB, max_pixels=512 * 512, max_files=3)  # type: ignore[operator]


# ------------------------------------------------------------------------------ good uploads


def test_good_upload_gives_the_models_result(server: Server) -> None:
    data = png(24, 32)
    job = server.upscale(data, "photo.png")
    assert job["state"] == "done" and (job["width"], job["height"]) == (128, 96)
    r = server.client.get(job["result"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    expected = Upscaler(tiny_net(), device="cpu").upscale(pixels(data))
    np.testing.assert_array_equal(pixels(r.content), expected)
    server.assert_nothing_outside()


def test_download_names_the_file_after_the_upload(server: Server) -> None:
    job = server.upscale(png(), "holiday photo.png")
    r = server.client.get(job["download"])
    assert r.status_code == 200
    assert (
        r.headers["content-disposition"] == "attachment; filename*=utf-8''holiday%20photo_out.png"
    )


def test_a_bad_file_fails_alone_and_the_others_go_on(server: Server) -> None:
    good = png()
    r = server.post([("a.png", good), ("bad.png", b"hello, not an image"), ("c.png", good)])
    assert r.status_code == 202
    files = r.json()["files"]
    assert [f["name"] for f in files] == ["a.png", "bad.png", "c.png"]
    assert files[1]["error"].startswith("not an image: the file starts with text 'hello, not")
    assert [server.wait(files[i]["id"])["state"] for i in (0, 2)] == ["done", "done"]
    server.assert_nothing_outside()


def test_waiting_jobs_see_their_position_in_the_queue(make_server: object) -> None:
    gate = threading.Event()
    s: Server = make_server(  # type: ignore[operator]
        models=[ModelChoice("gated", "waits", 4, lambda dn: Gated(gate))], queue_size=4
    )
    ids = [s.post([(f"{i}.png", png(seed=i))]).json()["files"][0]["id"] for i in range(3)]
    _wait_state(s, ids[0], "running")
    states = [s.client.get(f"/api/jobs/{i}").json() for i in ids]
    assert [(j["state"], j["position"]) for j in states] == [
        ("running", 0),
        ("queued", 1),
        ("queued", 2),
    ]
    gate.set()
    assert [s.wait(i)["state"] for i in ids] == ["done"] * 3


def test_cancel_removes_a_waiting_job_and_stops_a_running_one(make_server: object) -> None:
    gate = threading.Event()
    s: Server = make_server(  # type: ignore[operator]
        models=[ModelChoice("gated", "waits", 4, lambda dn: Gated(gate))]
    )
    running, waiting = (s.post([(f"{i}.png", png())]).json()["files"][0]["id"] for i in (0, 1))
    _wait_state(s, running, "running")
    assert s.client.delete(f"/api/jobs/{waiting}").status_code == 204
    assert s.client.get(f"/api/jobs/{waiting}").status_code == 404
    assert s.client.delete(f"/api/jobs/{running}").status_code == 204
    gate.set()
    assert s.wait(running) == {"id": running, "state": "gone"}
    s.assert_nothing_outside()
    assert list((s.root / "work" / "results").iterdir()) == []
    s.assert_still_serving()


def _wait_state(s: Server, job_id: str, state: str) -> None:
    for _ in range(300):
        if s.client.get(f"/api/jobs/{job_id}").json()["state"] == state:
            return
        time.sleep(0.02)
    raise AssertionError(f"job never reached {state}")


# ------------------------------------------------------------------------------ bad files


def test_zero_byte_file_is_refused(server: Server) -> None:
    r = server.post([("empty.png", b"")])
    assert r.status_code == 400
    assert r.json()["detail"] == "no image accepted: empty.png: empty file (0 bytes)"
    server.assert_nothing_outside()
    server.assert_still_serving()


def test_text_named_png_is_refused_by_its_content(server: Server) -> None:
    r = server.post([("notes.png", b"This is a text file.\n")])
    assert r.status_code == 400
    assert r.json()["detail"] == (
        "no image accepted: notes.png: not an image: the file starts with text "
        "'This is a text file.' (send PNG, JPEG, WebP, TIFF, BMP or GIF)"
    )
    server.assert_nothing_outside()
    server.assert_still_serving()


def test_png_cut_inside_its_header_is_refused(server: Server) -> None:
    r = server.post([("cut.png", png()[:20])])
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert detail.startswith("no image accepted: cut.png: a PNG signature but a corrupt or ")
    server.assert_nothing_outside()
    server.assert_still_serving()


def test_truncated_png_fails_its_job_with_the_reason(server: Server) -> None:
    data = png(64, 64)
    r = server.post([("half.png", data[: len(data) // 2])])
    assert r.status_code == 202  # the header is whole; the pixel data is not
    job = server.wait(r.json()["files"][0]["id"])
    assert job["state"] == "error"
    assert job["error"].startswith("cannot decode the PNG data (")
    assert job["error"].endswith("the file is damaged or incomplete")
    assert "upload" not in job["error"].split("(")[0]  # the server's own path is not shown
    server.assert_nothing_outside()
    server.assert_still_serving()


def test_decompression_bomb_is_refused_from_its_header(server: Server) -> None:
    r = server.post([("bomb.png", png_header_only(50_000, 50_000))])
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert detail.startswith("no image accepted: bomb.png: ")
    assert "2500.0 MP), over the 0.3 MP limit; nothing was decoded" in detail
    server.assert_nothing_outside()
    server.assert_still_serving()


def test_image_just_over_the_pixel_limit_gives_its_size(server: Server) -> None:
    r = server.post([("big.png", png_header_only(1024, 257))])
    assert r.status_code == 400
    assert r.json()["detail"] == (
        "no image accepted: big.png: 1024x257 is 0.3 MP, over the 0.3 MP limit; nothing was decoded"
    )
    server.assert_still_serving()


# ------------------------------------------------------------------------------ sizes and counts


def test_upload_over_the_limit_is_refused_by_its_content_length(server: Server) -> None:
    r = server.post([("big.png", b"\x89PNG\r\n\x1a\n" + bytes(2 * MB))])
    assert r.status_code == 413
    assert r.json()["detail"].startswith(
        "the upload is 2 MB, over the 1 MB limit (--max-upload-mb)"
    )
    server.assert_nothing_outside()
    server.assert_still_serving()


def test_upload_over_the_limit_without_content_length_is_stopped_while_streaming(
    server: Server,
) -> None:
    body = multipart([("big.png", bytes(2 * MB))])

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 64 * 1024):
            yield body[i : i + 64 * 1024]

    r = server.client.post("/api/jobs", content=chunks(), headers={"content-type": MULTIPART})
    assert r.status_code == 413
    assert re.fullmatch(
        r"the upload is over the 1 MB limit \(--max-upload-mb\); \d+ bytes received so far",
        r.json()["detail"],
    )
    server.assert_nothing_outside()
    server.assert_still_serving()


def test_upload_with_a_lying_content_length_is_stopped_while_streaming(server: Server) -> None:
    body = multipart([("big.png", bytes(2 * MB))])
    r = server.client.post(
        "/api/jobs", content=body, headers={"content-type": MULTIPART, "content-length": "1000"}
    )
    assert r.status_code == 413
    assert r.json()["detail"].startswith("the upload is over the 1 MB limit (--max-upload-mb); ")
    server.assert_nothing_outside()
    server.assert_still_serving()


def test_body_shorter_than_its_content_length_is_refused(server: Server) -> None:
    body = multipart([("a.png", png())])
    r = server.client.post(
        "/api/jobs",
        content=body,
        headers={"content-type": MULTIPART, "content-length": str(len(body) + 500)},
    )
    assert r.status_code == 400
    assert r.json()["detail"] == (
        f"the body has {len(body)} bytes but Content-Length said {len(body) + 500}"
    )
    server.assert_nothing_outside()
    server.assert_still_serving()


def test_too_many_files_are_refused(server: Server) -> None:
    r = server.post([(f"{i}.png", png(seed=i)) for i in range(4)])
    assert r.status_code == 400
    assert r.json()["detail"] == (
        "too many files: at most 3 per upload (--max-files); send the rest in another upload"
    )
    assert server.queue.jobs == {}
    server.assert_nothing_outside()
    server.assert_still_serving()


def test_full_queue_answers_503_with_a_message(make_server: object) -> None:
    gate = threading.Event()
    s: Server = make_server(  # type: ignore[operator]
        models=[ModelChoice("gated", "waits", 4, lambda dn: Gated(gate))], queue_size=2
    )
    running = s.post([("a.png", png())]).json()["files"][0]["id"]
    _wait_state(s, running, "running")
    waiting = s.post([("b.png", png())]).json()["files"][0]["id"]
    r = s.post([("c.png", png()), ("d.png", png())])  # one place left, two images: none queued
    assert r.status_code == 503
    assert r.headers["retry-after"] == "10"
    assert r.json()["detail"] == (
        "the queue is full: 1 of 2 places are taken and this upload has 2 images; "
        "try again when some are done"
    )
    last = s.post([("e.png", png())]).json()["files"][0]["id"]
    r = s.post([("f.png", png())])  # no place left: refused before its body is read
    assert r.status_code == 503
    assert r.json()["detail"] == (
        "the queue is full: 2 of 2 places are taken; try again when some are done"
    )
    gate.set()
    assert [s.wait(i)["state"] for i in (running, waiting, last)] == ["done"] * 3
    s.assert_nothing_outside()
    s.assert_still_serving()


def test_path_traversal_file_name_is_only_display_text(server: Server) -> None:
    r = server.post([("../../x.png", png())])
    assert r.status_code == 202
    entry = r.json()["files"][0]
    assert entry["name"] == "x.png"
    job = server.wait(entry["id"])
    assert job["state"] == "done"
    disposition = server.client.get(job["download"]).headers["content-disposition"]
    assert disposition == 'attachment; filename="x_out.png"'
    # ../../x.png from the uploads folder is the test's own folder; one more level up, its parent
    assert not list(server.root.rglob("x*")) and not (server.root.parent / "x.png").exists()
    server.assert_nothing_outside()
    server.assert_still_serving()


def test_markup_in_a_file_name_is_kept_as_text_and_left_out_of_headers(server: Server) -> None:
    name = "<img src=x onerror=alert(1)>.png"
    job = server.upscale(png(), name)
    assert job["name"] == name  # the page shows it with textContent
    disposition = server.client.get(job["download"]).headers["content-disposition"]
    assert disposition == "attachment; filename*=utf-8''img%20src_x%20onerror_alert_1_out.png"


# ------------------------------------------------------------------------------ options


def test_unknown_model_is_refused_with_the_choices(server: Server) -> None:
    r = server.post([("a.png", png())], model="nope")
    assert r.status_code == 400
    assert r.json()["detail"] == "unknown model 'nope'; choose one of: tiny"
    server.assert_nothing_outside()


def test_outscale_out_of_range_is_refused(server: Server) -> None:
    r = server.post([("a.png", png())], outscale="20")
    assert r.status_code == 400
    assert r.json()["detail"] == "outscale 20 is outside 1-8"


def test_outscale_and_tile_reach_the_upscaler(server: Server) -> None:
    data = png(24, 32)
    r = server.post([("a.png", data)], outscale="2", tile="32")
    job = server.wait(r.json()["files"][0]["id"])
    assert (job["width"], job["height"]) == (64, 48) and job["total"] == 1
    expected = Upscaler(tiny_net(), device="cpu", tile=32).upscale(pixels(data), outscale=2)
    np.testing.assert_array_equal(pixels(server.client.get(job["result"]).content), expected)


def test_model_stays_loaded_and_a_switch_loads_once(make_server: object) -> None:
    loads: list[str] = []

    def loader(name: str):  # type: ignore[no-untyped-def]
        def load(dn: float) -> nn.Module:
            loads.append(name)
            return tiny_net()

        return load

    s: Server = make_server(  # type: ignore[operator]
        models=[ModelChoice(n, n, 4, loader(n)) for n in ("one", "two")]
    )
    for model in ("one", "one", "two", "two", "two"):
        r = s.post([("a.png", png())], model=model)
        assert s.wait(r.json()["files"][0]["id"])["state"] == "done"
    assert loads == ["one", "two"]


def test_page_offers_the_offline_zoo_models_with_their_descriptions(ncnn_models_dir: Path) -> None:
    choices = {c.name: c for c in zoo_choices()}
    for name, description in (
        ("RealESRGAN_x4plus", "general photos, x4 (GAN, 23 RRDB blocks)"),
        ("RealESRGAN_x4plus_anime_6B", "anime illustrations, x4 (GAN, 6 RRDB blocks)"),
        ("realesr-animevideov3", "anime video frames, x4 (compact, 16 convs); x2/x3 by resizing"),
    ):
        assert (choices[name].description, choices[name].scale) == (description, 4)
    assert not any(n.endswith("_netD") for n in choices)  # discriminators do not upscale
    net = choices["realesr-animevideov3"].load(0.5)
    assert isinstance(net, SRVGGNetCompact) and net.upscale == 4


# ------------------------------------------------------------------------------ results


def test_result_is_deleted_after_its_download(make_server: object) -> None:
    s: Server = make_server(keep_after_download_s=0.0)  # type: ignore[operator]
    job = s.upscale(png())
    assert s.client.get(job["download"]).status_code == 200
    assert list((s.root / "work" / "results").iterdir()) == []
    r = s.client.get(f"/api/jobs/{job['id']}")
    assert r.status_code == 404
    assert r.json()["detail"].startswith(f"job '{job['id']}' is unknown or its result was deleted")


def test_result_is_deleted_when_it_expires(server: Server) -> None:
    job = server.upscale(png())
    assert server.queue.sweep(time.monotonic() + 1) == 0
    assert server.queue.sweep(time.monotonic() + 1801) == 1
    assert list((server.root / "work" / "results").iterdir()) == []
    assert server.client.get(job["result"]).status_code == 404


def test_zip_holds_every_result_under_unique_names(server: Server) -> None:
    jobs = [server.upscale(png(seed=i), "same.png") for i in range(2)]
    r = server.client.get(f"/api/zip?ids={jobs[0]['id']},{jobs[1]['id']}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert zf.namelist() == ["same_out.png", "same_out-2.png"]
        for job, name in zip(jobs, zf.namelist(), strict=True):
            assert zf.read(name) == server.client.get(job["result"]).content
    assert list((server.root / "work" / "zips").iterdir()) == []


def test_workers_and_the_temp_folder_go_at_shutdown(tmp_path: Path) -> None:
    app = create_app(Settings(devices=("cpu",)), models=[ModelChoice("tiny", "t", 4, tiny_net)])
    work = app.state.work_dir
    with TestClient(app, base_url=BASE):
        assert app.state.queue.ready.wait(30) and work.is_dir()
        workers = list(app.state.queue.workers)
    assert not work.exists()
    assert not any(w.is_alive() for w in workers)


# ------------------------------------------------------------------------------ security


def test_every_response_carries_the_security_headers(server: Server) -> None:
    for path in ("/", "/static/app.js", "/api/config", "/nowhere"):
        h = server.client.get(path).headers
        assert h["content-security-policy"].startswith("default-src 'self'; script-src 'self';")
        assert "unsafe-inline" not in h["content-security-policy"]
        assert h["x-content-type-options"] == "nosniff"
        assert h["x-frame-options"] == "DENY"


def test_page_has_no_inline_script_or_style(server: Server) -> None:
    html = server.client.get("/").text
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/app.js" defer>']
    assert re.findall(r"<style|\sstyle=|\son\w+=", html) == []


def test_cross_origin_api_requests_are_refused(server: Server) -> None:
    r = server.client.post("/api/jobs", headers={"origin": "http://evil.example"})
    assert r.status_code == 403
    assert r.json()["detail"] == (
        "cross-origin request refused: Origin 'http://evil.example' is not 'http://127.0.0.1:7860'"
    )
    r = server.client.get("/api/config", headers={"sec-fetch-site": "cross-site"})
    assert r.status_code == 403
    assert r.json()["detail"] == "cross-site request refused (Sec-Fetch-Site: cross-site)"
    ok = server.client.get("/api/config", headers={"origin": BASE, "sec-fetch-site": "same-origin"})
    assert ok.status_code == 200


def test_foreign_host_names_are_refused_on_loopback(server: Server) -> None:
    r = server.client.get("/", headers={"host": "rebind.example:7860"})
    assert r.status_code == 400
    assert r.json()["detail"].startswith("Host 'rebind.example:7860' is not this server's name")


def test_static_files_are_a_fixed_list(server: Server) -> None:
    assert server.client.get("/static/style.css").status_code == 200
    for path in ("/static/", "/static/index.html", "/static/..%2fapp.py", "/static/%2e%2e/app.py"):
        assert server.client.get(path).status_code == 404, path


def test_slow_upload_times_out(tmp_path: Path) -> None:
    settings = Settings(work_dir=tmp_path, request_timeout_s=0.3)
    app = create_app(settings, models=[ModelChoice("tiny", "t", 4, tiny_net)])
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/jobs",
        "raw_path": b"/api/jobs",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:7860"), (b"content-type", MULTIPART.encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 7860),
    }
    sent: list[dict] = []
    first = [True]

    async def receive() -> dict:
        if first:
            first.pop()
            return {
                "type": "http.request",
                "body": b"--resrgan-test-boundary\r\n",
                "more_body": True,
            }
        await asyncio.sleep(30)  # the client stalls
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    assert sent[0]["status"] == 408
    detail = json.loads(sent[1]["body"])["detail"]
    assert detail.startswith("the upload took longer than 0.3 s (--request-timeout); 25 bytes ")
    assert list((tmp_path / "uploads").iterdir()) == []


# ------------------------------------------------------------------------------ the command


def test_serve_refuses_a_busy_port_and_warns_about_other_hosts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--host", "0.0.0.0", "--port", str(port)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("resrgan serve: warning: listening on 0.0.0.0, not 127.0.0.1: ")
    assert err[-1].startswith(
        f"resrgan serve: error: --host/--port: cannot listen on 0.0.0.0:{port}"
    )


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--max-files", "0", "--max-files: 0 must be 1 or more"),
        ("--max-upload-mb", "-1", "--max-upload-mb: -1 must be a positive number"),
        ("--port", "70000", "--port: 70000 is not a port number (0-65535)"),
    ],
)
def test_serve_refuses_bad_limits(
    flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", flag, value]) == 2
    assert capsys.readouterr().err.strip() == f"resrgan serve: error: {message}"
