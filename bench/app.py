"""App benchmark: cold start to first answer in a real browser, a warm classification, the server's memory.

    python -m bench.app

Starts `streamlit run streamlit_app.py` on a free local port, drives Debian's
Chromium with Playwright, uploads an example X-ray and waits for the label, then
saves a screenshot of every page in bench/out/screenshots/.
"""

from __future__ import annotations

import time

from bench.common import record_results, rss_mb
from devtools.harness import PROJECT_ROOT, launch_chromium, streamlit_server

SCREENSHOTS = PROJECT_ROOT / "bench" / "out" / "screenshots"


def wait_for_answers(page, count: int) -> None:
    """Until ``count`` results (probability + X-ray + overlay) are on the page; polls every 50 ms."""
    page.wait_for_function(
        """n => [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')]
                   .filter(e => e.textContent.startsWith('Probability of pneumonia:')).length >= n
               && document.querySelectorAll('[data-testid="stImage"] img').length >= 2 * n""",
        arg=count,
        polling=50,
        timeout=120_000,
    )


def show_method(page, method: str, count: int) -> float:
    """Pick a saliency method in the sidebar; seconds until all ``count`` overlays are drawn with it."""
    started = time.perf_counter()
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name=method, exact=True).click()
    page.wait_for_function(
        """([method, n]) => [...document.querySelectorAll('[data-testid="stImageCaption"]')]
               .filter(e => e.textContent.trim().startsWith(method + ': evidence for')).length >= n""",
        arg=[method, count],
        polling=50,
        timeout=600_000,
    )
    return time.perf_counter() - started


def main() -> None:
    from playwright.sync_api import sync_playwright

    examples = sorted((PROJECT_ROOT / "examples").glob("*.jpeg"))
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)  # a visitor's browser is already open
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        try:  # the server log holds the model's load and warm-up times
            with streamlit_server(SCREENSHOTS.parent / "server.log") as server:
                healthy = server.healthy_after_s
                page.goto(server.url)
                uploader = page.locator('[data-testid="stFileUploader"] input[type="file"]')
                uploader.wait_for(state="attached", timeout=120_000)
                shown = time.perf_counter() - started
                uploader.set_input_files(str(examples[0]))
                wait_for_answers(page, 1)
                first = time.perf_counter() - started
                timings = []
                for count, example in enumerate(examples[1:], start=2):  # the uploader keeps earlier files: one more each
                    t0 = time.perf_counter()
                    uploader.set_input_files(str(example))
                    wait_for_answers(page, count)
                    timings.append(time.perf_counter() - t0)
                page.screenshot(path=str(SCREENSHOTS / "classify.png"), full_page=True)
                memory_classify = rss_mb(server.process.pid)
                methods = {method: show_method(page, method, len(examples)) for method in ("Grad-CAM++", "ScoreCAM", "Grad-CAM")}
                memory_methods = rss_mb(server.process.pid)
                t0 = time.perf_counter()
                page.goto(f"{server.url}/metrics")  # first visit: nothing of this page is cached yet
                page.get_by_text("Training runs (MLflow)").wait_for(timeout=120_000)  # the page's last section drawn
                metrics_drawn = time.perf_counter() - t0
                page.wait_for_function(  # and the script finished: Streamlit's "running" indicator is gone
                    """() => !document.querySelector('[data-testid="stStatusWidget"]')""", polling=50, timeout=120_000
                )
                metrics_ready = time.perf_counter() - t0
                for path in ("metrics", "training", "model_card"):  # st.navigation's URL paths for the other pages
                    page.goto(f"{server.url}/{path}")
                    page.wait_for_timeout(6_000)  # charts and tables render after the script run
                    page.screenshot(path=str(SCREENSHOTS / f"{path}.png"), full_page=True)
                memory = rss_mb(server.process.pid)
        finally:
            browser.close()
    warm = sorted(timings)[len(timings) // 2]
    rows = [
        ("Metrics page on first visit: its last section drawn", f"{metrics_drawn:.1f} s", "—", "—"),
        ("Metrics page on first visit: finished (the script's run over)", f"{metrics_ready:.1f} s", "—", "≤ 3 s"),
        ("server start to healthy", f"{healthy:.1f} s", "—", "—"),
        ("server start to the page shown (uploader ready; the model may still be loading)", f"{shown:.1f} s", "—", "—"),
        (
            "cold start to first answer (label + Grad-CAM) in Chromium",
            f"{first:.1f} s",
            f"{first / 10:.2f} of the goal",
            "≤ 10 s",
        ),
        (
            "warm classification through the browser (upload → label + Grad-CAM), median",
            f"{warm:.2f} s",
            "—",
            "well under 1 s of compute",
        ),
        ("serving process memory (RSS) after the answers on the Classify page", f"{memory_classify:.0f} MB", "—", "—"),
        (f"Grad-CAM++ for the {len(examples)} images, first use", f"{methods['Grad-CAM++']:.2f} s", "—", "—"),
        (f"ScoreCAM for the {len(examples)} images", f"{methods['ScoreCAM']:.2f} s", "—", "—"),
        ("back to Grad-CAM (it came with the answers)", f"{methods['Grad-CAM']:.2f} s", "—", "—"),
        ("serving process memory (RSS) after the other methods", f"{memory_methods:.0f} MB", "—", "—"),
        ("serving process memory (RSS) after also opening every other page", f"{memory:.0f} MB", "—", "—"),
    ]
    print(record_results("App", "python -m bench.app", rows, "Includes browser upload and rendering round trips."))


if __name__ == "__main__":
    main()
