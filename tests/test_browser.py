"""End to end in a real headless Chromium: start the server, upload an X-ray, see the label and the Grad-CAM."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import PROJECT_ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    port = free_port()
    env = {**os.environ, "PNEUMO_MODEL_DIR": str(tiny_model_dir), "PNEUMO_RUNS_DIR": str(tmp_path_factory.mktemp("runs"))}
    log = open(tmp_path_factory.mktemp("server") / "streamlit.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port), "--server.address", "127.0.0.1"],
        cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("the Streamlit server did not become healthy in 90 s")
    yield url
    process.terminate()
    process.wait(timeout=30)
    log.close()


def test_upload_shows_label_probability_and_gradcam(server):
    from playwright.sync_api import expect, sync_playwright

    example = next((PROJECT_ROOT / "examples").glob("pneumonia_*.jpeg"))
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server, wait_until="domcontentloaded")
            expect(page.get_by_text("Classify a chest X-ray")).to_be_visible(timeout=90_000)
            page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(example))
            expect(page.get_by_text("Probability of pneumonia", exact=True)).to_be_visible(timeout=90_000)
            verdict = page.locator("h3").filter(has_text="NORMAL").or_(page.locator("h3").filter(has_text="PNEUMONIA"))
            expect(verdict.first).to_be_visible()
            expect(page.get_by_text("Grad-CAM overlay")).to_be_visible()
            images = page.locator('[data-testid="stImage"] img')
            expect(images).to_have_count(2)
            assert all(images.nth(i).evaluate("img => img.naturalWidth") > 0 for i in range(2))
            page.screenshot(path=str(ARTIFACTS / "classify_upload.png"), full_page=True)
        finally:
            browser.close()
