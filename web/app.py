"""The drag-and-drop demo: drop a PDF or image, see each page with the model's boxes beside its Markdown.

Run by ``dsocr web --api URL`` (``streamlit run`` on this file with ``DSOCR_WEB_API`` set). Everything it knows
comes from the HTTP API; it renders the pages itself only to draw the boxes the API returned on them.
"""

from __future__ import annotations

import hashlib
import json
import os

import streamlit as st

from dsocr.contract import MODES
from dsocr.web.client import ApiClient, Problem, Upload
from dsocr.web.pages import colour, draw_blocks, markdown_pieces, page_images

#: The prompts that ask for the page's content (the others describe or locate, and need more input).
DOCUMENT_PROMPTS = ["markdown", "ocr", "free"]
STATUS = {"ok": "read", "incomplete": "stopped at the token limit: the text may be incomplete", "failed": "failed"}


def options() -> dict[str, str]:
    with st.sidebar:
        st.header("Options")
        mode = st.selectbox("Mode", list(MODES), index=list(MODES).index("gundam"), help="vision tokens per page")
        prompt = st.selectbox("Prompt", DOCUMENT_PROMPTS)
        pages = st.text_input("Pages", placeholder="all, or e.g. 1-3,7")
        tokens = st.number_input("Most tokens a page (0: the server's limit)", min_value=0, value=0, step=256)
    form = {"mode": mode, "prompt": prompt, "output": "both"}
    if pages.strip():
        form["pages"] = pages.strip()
    if tokens:
        form["max_new_tokens"] = str(tokens)
    return form


def remember_upload() -> None:
    upload = st.session_state.get("upload")
    st.session_state.document = Upload(upload.name, upload.getvalue()) if upload is not None else None


def read(document: Upload, form: dict[str, str]) -> None:
    """Ask the API once per document and options; keep the result (or the problem) for the reruns after."""
    key = hashlib.sha256(document.data + json.dumps(form, sort_keys=True).encode()).hexdigest()
    if st.session_state.get("read_key") == key:
        return
    bar = st.progress(0.0, text="Reading…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total if total else 0.0, text=f"{done} of {total} pages")

    client = ApiClient(os.environ["DSOCR_WEB_API"], os.environ.get("DSOCR_WEB_API_KEY"))
    try:
        st.session_state.result, st.session_state.problem = client.read(document, form, progress), None
    except Problem as problem:
        st.session_state.result, st.session_state.problem = None, problem.message
    finally:
        client.close()
        bar.empty()
    st.session_state.read_key = key


def show_summary(document: Upload, result: dict) -> None:
    summary = result["summary"]
    columns = st.columns(5)
    columns[0].metric("Pages", summary["pages"])
    columns[1].metric("Read", summary["ok"])
    columns[2].metric("Incomplete / failed", f"{summary['incomplete']} / {summary['failed']}")
    columns[3].metric("Vision tokens", summary["vision_tokens"])
    columns[4].metric("Generated tokens", summary["generated_tokens"])
    stem = document.name.rsplit(".", 1)[0] or "document"
    left, right = st.columns(2)
    left.download_button("Download Markdown", result["markdown"], f"{stem}.md", "text/markdown")
    record = {key: value for key, value in result.items() if key != "markdown"}
    right.download_button("Download JSON", json.dumps(record, indent=2), f"{stem}.json", "application/json")


def show_page(page: dict, image) -> None:
    st.subheader(f"Page {page['number']}")
    status = STATUS[page["status"]]
    if page["status"] == "failed":
        st.error(f"Page {page['number']} {status}: {page['error']['message']} ({page['error']['code']})")
    elif page["status"] == "incomplete":
        st.warning(f"Page {page['number']} {status}")
    ratio = page["compression_ratio"]
    st.caption(
        f"{page['vision_tokens']} vision tokens · {page['generated_tokens']} generated tokens · "
        f"compression ratio {ratio:.2f}"
        if ratio is not None
        else f"{page['vision_tokens']} vision tokens"
    )
    picture, text = st.columns(2)
    with picture:
        if image is not None:
            blocks = page["blocks"]
            st.image(draw_blocks(image, blocks), caption=f"page {page['number']}: {len(blocks)} blocks")
            labels = sorted({block["label"] for block in blocks})
            if labels:
                legend = " ".join(f'<span style="color:{colour(label)}">■ {label}</span>' for label in labels)
                st.html(f'<div class="dsocr-legend">{legend}</div>')
    with text:
        for kind, piece in markdown_pieces(page["markdown"]):
            if kind == "html":
                st.html(piece)
            else:
                st.markdown(piece)


def main() -> None:
    st.set_page_config(page_title="dsocr", layout="wide")
    st.title("DeepSeek-OCR")
    form = options()
    st.file_uploader(
        "Drop a PDF or an image",
        type=["pdf", "png", "jpg", "jpeg", "tif", "tiff", "webp"],
        key="upload",
        on_change=remember_upload,
    )
    document = st.session_state.get("document")
    if document is None:
        st.info("Drop a document above: each page comes back with its boxes and Markdown.")
        return
    read(document, form)
    if st.session_state.problem:
        st.error(st.session_state.problem)
        return
    result = st.session_state.result
    show_summary(document, result)
    pages = result["pages"]
    try:
        images = page_images(document.data, [page["index"] for page in pages])
    except Exception as error:  # the API read it; a page we cannot show is not a reason to hide the text
        st.warning(f"The pages cannot be shown here ({error}); their text follows.")
        images = {}
    for page in pages:
        show_page(page, images.get(page["index"]))


main()
