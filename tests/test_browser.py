"""End to end in a real headless Chromium: start the server, upload an X-ray, see the label and the Grad-CAM."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from devtools import harness
from devtools.harness import launch_chromium

from .conftest import PROJECT_ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


@contextmanager
def streamlit_server(model_dir: Path, workdir: Path, **env: str):
    """The app on a free loopback port with the given model and extra environment (skipped without Chromium)."""
    if not harness.chromium_available():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    env = {"PNEUMO_MODEL_DIR": str(model_dir), "PNEUMO_RUNS_DIR": str(workdir / "runs"), **env}
    try:
        with harness.streamlit_server(workdir / "streamlit.log", **env) as running:
            yield running
    except harness.ServerStartError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    with streamlit_server(tiny_model_dir, tmp_path_factory.mktemp("server"), PNEUMO_OPERATOR_PASSWORD="") as running:
        yield running


def files_changed_since(start: float, roots: list[Path], skip: set[Path]) -> list[Path]:
    """Files under ``roots`` modified since ``start`` (os.walk skips folders that vanish while it walks)."""
    changed = []
    for root in roots:
        for folder, _, names in os.walk(root):
            for path in (Path(folder) / name for name in names):
                try:
                    if path not in skip and path.is_file() and path.stat().st_mtime >= start and path.stat().st_size < 50_000_000:
                        changed.append(path)
                except OSError:  # vanished while walking
                    continue
    return changed


def files_holding(needle: bytes, paths: list[Path]) -> tuple[list[Path], int]:
    """The files among ``paths`` whose bytes hold ``needle``, and how many could not be read (another program's
    temporary file that vanished, or one it keeps closed to us)."""
    holding, unreadable = [], 0
    for path in paths:
        try:
            if needle in path.read_bytes():
                holding.append(path)
        except OSError:
            unreadable += 1
    return holding, unreadable


@contextmanager
def page_with_answer(url: str, upload: Path):
    """A Chromium page on the app, after ``upload`` went through the file uploader and its answer is shown."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, wait_until="domcontentloaded")
            expect(page.get_by_text("Classify a chest X-ray")).to_be_visible(timeout=90_000)
            page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(upload))
            expect(page.get_by_text("Probability of pneumonia:")).to_be_visible(timeout=90_000)
            yield page
        finally:
            browser.close()


def test_upload_shows_label_probability_and_gradcam(server):
    from playwright.sync_api import expect

    example = next((PROJECT_ROOT / "examples").glob("pneumonia_*.jpeg"))
    ARTIFACTS.mkdir(exist_ok=True)
    with page_with_answer(server.url, example) as page:
        verdict = page.locator("h3").filter(has_text="NORMAL").or_(page.locator("h3").filter(has_text="PNEUMONIA"))
        expect(verdict.first).to_be_visible()
        expect(page.get_by_text("Grad-CAM: evidence for")).to_be_visible()  # says which class the map explains
        images = page.locator('[data-testid="stImage"] img')
        expect(images).to_have_count(2)
        assert all(images.nth(i).evaluate("img => img.naturalWidth") > 0 for i in range(2))
        page.screenshot(path=str(ARTIFACTS / "classify_upload.png"), full_page=True)


def test_films_added_to_a_full_batch_are_all_answered_and_every_download_works(server, tmp_path):
    """Twelve films, then three more added: every film is in the CSV with an answer; the PDF report downloads right
    after the CSV (it once failed with a missing deferred file)."""
    import csv

    from playwright.sync_api import expect, sync_playwright

    from devtools.imaging import encode, synthetic_xray

    films = []
    for i in range(15):
        films.append(tmp_path / f"film_{i:02d}.png")
        films[-1].write_bytes(encode(synthetic_xray(128, seed=i)))
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server.url, wait_until="domcontentloaded")
            uploader = page.locator('[data-testid="stFileUploader"] input[type="file"]')
            expect(page.get_by_text("Classify a chest X-ray")).to_be_visible(timeout=90_000)
            uploader.set_input_files([str(path) for path in films[:12]])
            expect(page.get_by_text("Download results (CSV)")).to_be_visible(timeout=90_000)
            uploader.set_input_files([str(path) for path in films[12:]])  # added to the twelve already there
            expect(page.get_by_text("Films 13–15")).to_be_visible(timeout=90_000)
            with page.expect_download() as table_download:
                page.get_by_text("Download results (CSV)").click()
            with page.expect_download() as report_download:  # at once, no rerun in between
                page.get_by_text("Download case report (PDF)").first.click()
            rows = list(csv.DictReader(open(table_download.value.path())))
            assert [row["file"] for row in rows] == [path.name for path in films]
            assert all(row["decision"] or row["reason no label"] for row in rows)
            assert Path(report_download.value.path()).read_bytes().startswith(b"%PDF")
        finally:
            browser.close()
    assert "MediaFileStorageError" not in server.log.read_text()


def test_a_film_and_its_identical_copy_each_get_a_section_and_a_report(server, tmp_path):
    """Sites send duplicates: a film, a byte-identical copy under another name, and a third film are each answered,
    with a heat map and a PDF report of their own, and the copy is said to be the same film."""
    from playwright.sync_api import expect, sync_playwright

    from devtools.imaging import encode, synthetic_xray

    film = encode(synthetic_xray(128, seed=21))
    paths = [tmp_path / "first.png", tmp_path / "copy-of-first.png", tmp_path / "other.png"]
    for path, data in zip(paths, (film, film, encode(synthetic_xray(128, seed=22)))):
        path.write_bytes(data)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server.url, wait_until="domcontentloaded")
            expect(page.get_by_text("Classify a chest X-ray")).to_be_visible(timeout=90_000)
            page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files([str(p) for p in paths])
            expect(page.get_by_text("The same film as first.png").first).to_be_visible(timeout=90_000)
            reports = page.get_by_text("Download case report (PDF)")
            expect(reports).to_have_count(3, timeout=60_000)
            expect(page.locator('[data-testid="stImage"] img')).to_have_count(6)  # the film and its heat map, each
            with page.expect_download() as copy_report:
                reports.nth(1).click()
            assert Path(copy_report.value.path()).read_bytes().startswith(b"%PDF")
            assert page.get_by_text("This app has encountered an error").count() == 0
        finally:
            browser.close()


def test_uploaded_dicom_is_kept_in_memory_only(server, tmp_path):
    """The upload path stores nothing: no file anywhere under /tmp or the project holds the patient's name afterwards,
    the server log never mentions it or the file name, and the page shows it only inside the DICOM expander."""
    from playwright.sync_api import expect

    from devtools.imaging import dicom_bytes, synthetic_xray

    secret = "Qzxv^Privacytest"
    upload = tmp_path / "patient-upload-7731.dcm"
    upload.write_bytes(dicom_bytes(synthetic_xray(256, seed=5).astype("uint16") * 16, PatientName=secret))
    start = time.time()
    with page_with_answer(server.url, upload) as page:
        assert not page.get_by_text(secret).is_visible()  # hidden until the user asks
        page.get_by_text("DICOM header fields").click()
        expect(page.get_by_text(secret)).to_be_visible()
    needle = secret.encode()
    touched = files_changed_since(start, [Path(tempfile.gettempdir()), PROJECT_ROOT], skip={upload, server.log})
    holding, unreadable = files_holding(needle, touched)
    assert not holding, holding
    print(f"{len(touched) - unreadable} changed files checked, {unreadable} vanished or unreadable (skipped)")
    log_text = server.log.read_text()
    assert secret not in log_text and upload.name not in log_text


def test_a_public_server_without_password_offers_viewers_no_operator_control(tiny_model_dir, tmp_path):
    """Marked public (as behind a reverse proxy) with no operator password: Training shows status, no control."""
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with streamlit_server(tiny_model_dir, tmp_path, PNEUMO_PUBLIC="1", PNEUMO_OPERATOR_PASSWORD="") as running:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{running.url}/training", wait_until="domcontentloaded")  # a fresh server's first visitor, deep-linked
                expect(page.get_by_text("no operator password is set")).to_be_visible(timeout=90_000)
                expect(page.get_by_text("not for clinical use").first).to_be_visible()  # the entry point ran: disclaimer
                expect(page.get_by_role("link", name="Model card")).to_be_visible()  # and its navigation
                # the job status renders after the header; on a loaded machine that can take longer than 5 s
                expect(page.get_by_text("No training job has been started")).to_be_visible(timeout=60_000)
                for label in ("Start training", "Promote the new model", "Roll back to the previous model"):
                    assert page.get_by_role("button", name=label).count() == 0
                page.screenshot(path=str(ARTIFACTS / "training_public_viewer.png"), full_page=True)
            finally:
                browser.close()


def test_every_page_renders_and_is_kept_as_a_screenshot(tiny_model_dir, tmp_path):
    """Each page in a real browser, with a model that has evaluation artifacts (as a trained one does)."""
    from playwright.sync_api import expect, sync_playwright

    from pneumo_core.evaluation.reports import predictions_frame, write_evaluation

    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    labels = np.array([0] * 6 + [1] * 10)
    files = [f"NORMAL/IM-0{i}15-0001.jpeg" for i in range(6)] + [f"PNEUMONIA/person{i}_virus_{i}.jpeg" for i in range(10)]
    frame = predictions_frame(files, labels, np.random.default_rng(0).normal(labels * 2 - 1, 1.0), 1.0, 0.5)
    write_evaluation(frame, 0.5, model_dir / "evaluation", "test")
    ARTIFACTS.mkdir(exist_ok=True)
    pages = {
        "classify": "Probability of pneumonia:",
        "metrics": "Internal test and external sites",
        "site_profiles": "Validate on your data",
        "model_card": "Intended use",
        "training": "Start training",
        "monitoring": "Latency per film",  # the example classified first is monitored
    }
    (tmp_path / "training-data").mkdir()  # a folder the Training page may train on: its form is drawn too
    env = {"PNEUMO_DATA_DIR": str(tmp_path / "none"), "PNEUMO_DATA_ROOTS": str(tmp_path / "training-data")}
    with streamlit_server(model_dir, tmp_path, PNEUMO_OPERATOR_PASSWORD="", **env) as running:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            try:
                for width in (800, 1400):  # a laptop with the sidebar open, and a desktop (tall: the whole page)
                    page = browser.new_page(viewport={"width": width, "height": 2200})
                    for path, landmark in pages.items():  # a text each page shows once its content is drawn
                        page.goto(f"{running.url}/{'' if path == 'classify' else path}", wait_until="domcontentloaded")
                        if path == "classify":
                            example = page.get_by_role("button", name="Pneumonia, viral")
                            expect(example).to_be_visible(timeout=90_000)
                            names = page.locator('[data-testid="stButton"] button p')
                            whole = names.evaluate_all("ps => ps.every(p => p.scrollWidth <= p.clientWidth)")
                            assert whole, f"an example button's name is cut at {width} px"
                            example.click()
                        expect(page.get_by_text(landmark).first).to_be_visible(timeout=90_000)
                        expect(page.get_by_text("not for clinical use").first).to_be_visible()
                        page.wait_for_timeout(1500)  # charts finish drawing
                        page.screenshot(path=str(ARTIFACTS / f"{path}_{width}px.png"), full_page=True)
                    page.close()
            finally:
                browser.close()
