"""dsocr.client against a real Triton server running the tiny checkpoint (the ``triton_server`` fixture).

The in-process ``tiny_model`` loads the same checkpoint, so a served page must equal it token for token.
"""

import asyncio
import io
import json
import socket
import time

import pikepdf
import pytest
from PIL import Image

from dsocr.cli import SAMPLE_PAGE, main
from dsocr.client import (
    AsyncOcrClient,
    OcrClient,
    OcrRequestError,
    PageDeadlineExceeded,
    ServerUnavailable,
    check_health,
    lineage,
)
from dsocr.contract import MODES, OcrOptions
from tests.support.documents import report_pdf
from tests.support.triton_harness import cancelled_pages, eventually, running_pages

#: Enough tokens to show the decoder agrees beyond its first steps, few enough to keep CPU tests fast.
FEW_TOKENS = 12
#: A page that decodes for many seconds: the random tiny model never emits EOS with the n-gram rule off, and
#: prompt plus output stay within the test server's 2048-position context.
LONG_PAGE = {"mode": "tiny", "prompt": "free", "max_new_tokens": 1900, "ngram_size": 0}
#: Longer than LONG_PAGE takes to decode to its end (about 3 s on one core): waiting this long for it to be
#: counted as cancelled also outlasts a page that was wrongly left running.
LONG_PAGE_S = 15


@pytest.fixture(scope="module")
def client(triton_server):
    with OcrClient(triton_server.grpc_url, deadline_s=300) as client:
        yield client


@pytest.fixture(scope="module")
def sample_page() -> Image.Image:
    return Image.open(SAMPLE_PAGE).convert("RGB")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def two_page_pdf() -> bytes:
    with pikepdf.open(io.BytesIO(report_pdf())) as pdf:
        del pdf.pages[2]
        buffer = io.BytesIO()
        pdf.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_served_page_equals_the_in_process_page_token_for_token(client, tiny_model, sample_page, mode):
    served = client.recognize(sample_page, OcrOptions(mode=mode, max_new_tokens=FEW_TOKENS))
    assert served == tiny_model.recognize(sample_page, OcrOptions(mode=mode, max_new_tokens=FEW_TOKENS))
    assert served.generated_tokens == FEW_TOKENS


def test_a_served_page_has_the_in_process_confidence(client, tiny_model, sample_page):
    options = OcrOptions(mode="small", max_new_tokens=FEW_TOKENS)
    served, in_process = client.recognize(sample_page, options), tiny_model.recognize(sample_page, options)
    assert served.mean_logprob < 0
    assert abs(served.mean_logprob - in_process.mean_logprob) < 1e-5


def test_image_bytes_are_sent_as_they_are_and_decoded_by_the_server(client, tiny_model):
    served = client.recognize(SAMPLE_PAGE.read_bytes(), OcrOptions(mode="tiny", max_new_tokens=FEW_TOKENS))
    assert served == tiny_model.recognize(SAMPLE_PAGE, OcrOptions(mode="tiny", max_new_tokens=FEW_TOKENS))


def test_recognize_many_returns_the_pages_in_input_order(client):
    # Different shapes take different Gundam tile grids, so every page has its own vision-token count.
    pages = [Image.new("RGB", size, "white") for size in [(1920, 640), (640, 640), (640, 1280), (1280, 640)]]
    options = OcrOptions(mode="gundam", max_new_tokens=2)
    together = list(client.recognize_many(pages, options, concurrency=4))
    one_by_one = [client.recognize(page, options) for page in pages]
    assert together == one_by_one
    assert len({page.vision_tokens for page in together}) == len(pages)


def test_bytes_that_are_not_an_image_are_an_invalid_argument(client):
    with pytest.raises(OcrRequestError, match="rejected"):
        client.recognize(b"%PDF-1.7 not an image", OcrOptions(mode="tiny", max_new_tokens=1))


def test_an_empty_image_is_an_invalid_argument(client):
    with pytest.raises(OcrRequestError):
        client.recognize(b"", OcrOptions(mode="tiny", max_new_tokens=1))


def unchecked(**options) -> OcrOptions:
    """Options as a client that skips the contract's checks would send them: the server must refuse them itself."""
    return OcrOptions.model_construct(**{**OcrOptions(mode="tiny", max_new_tokens=1).model_dump(), **options})


def test_an_unknown_mode_is_an_invalid_argument_naming_the_mode(client, sample_page):
    with pytest.raises(OcrRequestError, match="huge"):
        client.recognize(sample_page, unchecked(mode="huge"))


def test_the_server_still_serves_pages_after_rejecting_bad_ones(client, sample_page):
    for image, options in [(b"junk", unchecked()), (b"", unchecked()), (sample_page, unchecked(mode="huge"))]:
        with pytest.raises(OcrRequestError):
            client.recognize(image, options)
    assert (
        client.recognize(sample_page, OcrOptions(mode="tiny", max_new_tokens=FEW_TOKENS)).generated_tokens == FEW_TOKENS
    )


def test_a_page_past_its_deadline_raises_and_is_cancelled_in_the_decoder(triton_server, sample_page):
    cancelled_before = cancelled_pages(triton_server)

    async def page_past_its_deadline() -> bool:
        async with AsyncOcrClient(triton_server.grpc_url, deadline_s=1.5, retries=0) as client:
            page = asyncio.create_task(client.recognize(sample_page, OcrOptions(**LONG_PAGE)))
            decoding = await asyncio.to_thread(eventually, lambda: running_pages(triton_server) == 1, 1.5)
            with pytest.raises(PageDeadlineExceeded):
                await page
            return decoding

    assert asyncio.run(page_past_its_deadline()), "the page never reached the decoder: the test proves nothing"
    # Counted as cancelled, not as finished at its token limit: the decoder stopped it and freed its slot.
    assert eventually(lambda: cancelled_pages(triton_server) == cancelled_before + 1, within_s=LONG_PAGE_S)
    assert running_pages(triton_server) == 0


def test_an_unreachable_server_raises_server_unavailable_quickly(sample_page):
    started = time.monotonic()
    with OcrClient(f"127.0.0.1:{free_port()}", retries=2, backoff_s=0.05) as client:
        with pytest.raises(ServerUnavailable, match="gave up after 3 attempts"):
            client.recognize(sample_page, OcrOptions(mode="tiny"))
    assert time.monotonic() - started < 5


def test_check_health_is_ok_on_the_live_server(triton_server):
    health = check_health(triton_server.grpc_url, deadline_s=30)
    assert health.ok, health.detail
    assert 0 < health.latency_s < 30


def test_check_health_reports_an_unreachable_server_without_raising():
    health = check_health(f"127.0.0.1:{free_port()}", deadline_s=5)
    assert not health.ok
    assert health.latency_s < 5


def test_health_command_exits_0_and_says_ok_for_a_healthy_server(triton_server, capsys):
    assert main(["health", "--server", triton_server.grpc_url, "--deadline", "30"]) == 0
    assert capsys.readouterr().out.startswith("ok: ")


def test_health_command_exits_1_for_an_unreachable_server(capsys):
    assert main(["health", "--server", f"127.0.0.1:{free_port()}", "--deadline", "5"]) == 1
    assert capsys.readouterr().out.startswith("unhealthy: ")


def test_lineage_names_the_checkpoint_the_server_runs_as_the_in_process_model_does(triton_server, tiny_model):
    source = tiny_model.source
    assert lineage(triton_server.grpc_url) == {"id": source.model_id, "revision": source.revision, "lineage": None}


def test_ocr_on_the_server_writes_the_same_markdown_and_json_as_ocr_in_process(
    triton_server, tiny_checkpoint, tmp_path
):
    document = tmp_path / "report.pdf"
    document.write_bytes(two_page_pdf())
    common = [str(document), "--mode", "tiny", "--max-new-tokens", str(FEW_TOKENS), "--no-progress"]
    assert main(["ocr", *common, "--server", triton_server.grpc_url, "--out", str(tmp_path / "served")]) == 0
    assert main(["ocr", *common, "--model", str(tiny_checkpoint), "--out", str(tmp_path / "local")]) == 0

    served, local = (json.loads((tmp_path / run / "report.json").read_text()) for run in ("served", "local"))
    assert served["summary"]["pages"] == 2
    assert without_timings(served) == without_timings(local)
    assert (tmp_path / "served" / "report.md").read_text() == (tmp_path / "local" / "report.md").read_text()


def test_ocr_refuses_a_model_and_a_server_together(capsys):
    assert main(["ocr", str(SAMPLE_PAGE), "--server", "127.0.0.1:1", "--model", "x"]) == 2
    assert "--model cannot be combined with --server" in capsys.readouterr().err


def without_timings(record: dict) -> dict:
    """The record without what differs between two runs of the same pages: when, and how long."""
    record = {key: value for key, value in record.items() if key != "created"}
    record["summary"] = {key: value for key, value in record["summary"].items() if key != "seconds"}
    record["pages"] = [{key: value for key, value in page.items() if key != "timings"} for page in record["pages"]]
    return record
