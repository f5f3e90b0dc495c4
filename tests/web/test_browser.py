"""End to end in a real browser: Debian's chromium, driven by Playwright, on `dsocr web` in front of a `dsocr api`
process (the one `dsocr serve --with-api` starts) on the session's Triton server with the tiny checkpoint."""

import json
import re
import shutil
import subprocess
import sys
import time

import httpx
import pytest

from tests.support.api_harness import ApiProcess
from tests.support.documents import save, shaded_pdf
from tests.support.triton_harness import free_ports

pytestmark = [pytest.mark.triton, pytest.mark.browser]

CHROMIUM = shutil.which("chromium")
#: Streamlit answers its health check within seconds; reading three pages on a busy 2-core machine takes longer.
START_S, READ_MS = 60, 240_000


@pytest.fixture(scope="module")
def demo(triton_server, tmp_path_factory):
    """The API (8 tokens a page) and the demo in front of it: the demo's URL, and the API's."""
    work = tmp_path_factory.mktemp("web")
    env = {"DSOCR_API_MAX_NEW_TOKENS": "8"}
    with ApiProcess(triton_server.grpc_url, work / "jobs.sqlite3", work / "api.log", env=env) as api:
        [port] = free_ports(1)
        command = [sys.executable, "-m", "dsocr.cli", "web", "--api", api.url, "--port", str(port)]
        with open(work / "web.log", "wb") as log:
            web = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + START_S
            while not _healthy(url):
                assert web.poll() is None and time.monotonic() < deadline, (work / "web.log").read_text()
                time.sleep(0.5)
            yield url, api.url
        finally:
            web.terminate()
            web.wait(30)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/_stcore/health", timeout=2).text == "ok"
    except httpx.TransportError:
        return False


@pytest.fixture
def page():
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: run `make tools` (scripts/install-debian-tools.sh)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        yield browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        browser.close()


def drop(page, url: str, name: str, data: bytes, mime: str) -> None:
    page.goto(url)
    page.get_by_text("Drop a document above").wait_for(timeout=START_S * 1000)
    page.locator("input[type=file]").set_input_files(files=[{"name": name, "mimeType": mime, "buffer": data}])


def test_a_dropped_pdf_shows_its_pages_with_boxes_and_markdown_and_downloads_its_json(demo, page, tmp_path):
    url, _ = demo
    drop(page, url, "three.pdf", save(shaded_pdf(3)), "application/pdf")
    page.get_by_text("Download JSON").wait_for(timeout=READ_MS)
    page.get_by_text("page 3:").wait_for()
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    with page.expect_download() as download:
        page.get_by_text("Download JSON").click()
    record = json.loads(download.value.path().read_text())
    assert download.value.suggested_filename == "three.json"
    assert [p["number"] for p in record["pages"]] == [1, 2, 3]

    # Each page's image (with its boxes drawn on it), loaded: a broken image would have no width.
    widths = page.eval_on_selector_all("img[src*='media']", "images => images.map(i => i.naturalWidth)")
    assert len(widths) == 3 and all(width > 0 for width in widths), widths
    for number, result in enumerate(record["pages"], 1):
        assert page.get_by_text(f"page {number}: {len(result['blocks'])} blocks").count() >= 1
    text = page.inner_text("body")
    words = [w for p in record["pages"] for w in re.findall(r"[A-Za-z]{4,}", p["markdown"])]
    assert words and all(word in text for word in words[:5]), "the pages' Markdown is not on the page"
    page.screenshot(path=tmp_path / "web-demo.png", full_page=True)


def test_a_file_the_api_refuses_shows_its_message_in_the_page(demo, page):
    url, api_url = demo
    junk = b"these are not the bytes of a PDF"
    expected = httpx.post(f"{api_url}/ocr/predict", files={"file": ("notes.pdf", junk)}).json()["message"]
    drop(page, url, "notes.pdf", junk, "application/pdf")
    page.get_by_text(expected).wait_for(timeout=READ_MS)
    assert "Traceback" not in page.inner_text("body")
