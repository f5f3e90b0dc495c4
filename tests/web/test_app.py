"""The demo's flows in Streamlit's AppTest, against the real API in front of the session's Triton server.

AppTest cannot drop a file on the uploader, so each test puts the upload where the uploader's callback puts it
(``st.session_state.document``); the browser test (test_browser.py) drops a real one.
"""

import pytest
from streamlit.testing.v1 import AppTest

from dsocr.web.client import Upload
from tests.support.api_harness import api_server, settings
from tests.support.documents import save, shaded_pdf
from tests.support.triton_harness import free_ports

APP = "web/app.py"


def run_app(api_url: str, monkeypatch, document: Upload | None, tokens: int = 8) -> AppTest:
    monkeypatch.setenv("DSOCR_WEB_API", api_url)
    app = AppTest.from_file(APP, default_timeout=180)
    if document is not None:
        app.session_state["document"] = document
    app.run()
    if document is not None:  # the options as a user sets them, then the page reruns and reads
        app.sidebar.selectbox[0].select("tiny")
        app.sidebar.number_input[0].set_value(tokens)
        app.run()
    assert not app.exception, app.exception
    return app


def test_without_a_document_the_demo_asks_for_one(monkeypatch):
    app = run_app("http://127.0.0.1:9", monkeypatch, None)
    assert "Drop a document" in app.info[0].value


@pytest.mark.triton
def test_a_dropped_pdf_comes_back_page_by_page_with_its_tokens_and_downloads(triton_server, tmp_path, monkeypatch):
    with api_server(settings(triton_server.grpc_url, tmp_path)) as url:
        app = run_app(url, monkeypatch, Upload("three.pdf", save(shaded_pdf(3))))
    assert not app.error, [e.value for e in app.error]
    assert [header.value for header in app.subheader] == ["Page 1", "Page 2", "Page 3"]
    assert app.metric[0].value == "3"  # pages
    captions = [caption.value for caption in app.caption]
    assert sum("vision tokens" in caption and "compression ratio" in caption for caption in captions) == 3
    # The random checkpoint runs every page to its token limit: each page is marked incomplete.
    assert len(app.warning) == 3 and "token limit" in app.warning[0].value


@pytest.mark.triton
def test_a_file_the_api_refuses_shows_the_apis_message(triton_server, tmp_path, monkeypatch):
    with api_server(settings(triton_server.grpc_url, tmp_path)) as url:
        app = run_app(url, monkeypatch, Upload("notes.pdf", b"these are not the bytes of a PDF"))
    [error] = app.error
    assert "PDF" in error.value and "Traceback" not in error.value
    assert not app.subheader


def test_an_api_that_is_down_is_a_message_not_a_traceback(monkeypatch):
    [port] = free_ports(1)
    app = run_app(f"http://127.0.0.1:{port}", monkeypatch, Upload("a.png", b"\x89PNG"))
    [error] = app.error
    assert error.value.startswith(f"Cannot reach the API at http://127.0.0.1:{port}")
