"""The ensemble under load and under failure, on a real Triton server with the tiny checkpoint."""

import io
import os
import signal
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from PIL import Image
from tritonclient.utils import np_to_triton_dtype

from dsocr.client import OcrClient, check_health
from dsocr.contract import OcrOptions, resolve_prompt
from dsocr.model.preprocess import prepare_image
from dsocr.model.prompts import build_input_ids
from tests.support.triton_harness import (
    cancelled_pages,
    eventually,
    metric,
    processes_mentioning,
    running_pages,
    tiny_server,
)

PAGES = 32


def _pages(count: int) -> list[bytes]:
    """Random pages of random sizes, as PNG, so modes tile them differently and prompts differ in length."""
    rng = np.random.default_rng(7)
    pages = []
    for _ in range(count):
        height, width = (int(side) for side in rng.integers(200, 1400, size=2))
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buffer, format="PNG")
        pages.append(buffer.getvalue())
    return pages


def _executions(server, model: str) -> tuple[int, int]:
    """(requests served, executions run) of ``model`` so far: fewer executions than requests means batching."""
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        [stats] = client.get_inference_statistics(model, as_json=True)["model_stats"]
    return int(stats.get("inference_count", 0)), int(stats.get("execution_count", 0))


def test_pages_sent_at_once_are_batched_and_each_equals_in_process(triton_server, tiny_model):
    modes = ["tiny", "small", "base", "gundam"]
    options = [{"mode": modes[i % 4], "max_new_tokens": 8 + 4 * (i % 5)} for i in range(PAGES)]
    before = {model: _executions(triton_server, model) for model in ("preprocess", "encode")}

    pages = _pages(PAGES)
    with OcrClient(triton_server.grpc_url, max_in_flight=PAGES) as client, ThreadPoolExecutor(PAGES) as threads:
        served = list(threads.map(lambda page, option: client.recognize(page, OcrOptions(**option)), pages, options))

    for page, option, result in zip(pages, options, served):
        expected = tiny_model.recognize(Image.open(io.BytesIO(page)), OcrOptions(**option))
        assert result.token_ids == expected.token_ids
        assert (result.vision_tokens, result.prompt_tokens) == (expected.vision_tokens, expected.prompt_tokens)
    for model, (requests_before, executions_before) in before.items():
        requests, executions = _executions(triton_server, model)
        assert requests - requests_before == PAGES
        assert executions - executions_before < PAGES, f"{model} ran every page in a batch of its own"
    assert metric(triton_server, "dsocr_decode_peak_running_pages") > 1


@pytest.mark.triton
def test_killing_the_decode_stub_fails_the_deep_health_check(tiny_checkpoint, tiny_onnx_exports, tmp_path):
    with tiny_server(tiny_checkpoint, tiny_onnx_exports, tmp_path) as server:
        assert check_health(server.grpc_url).ok
        [stub] = [
            pid
            for pid, command in processes_mentioning(str(server.repository / "decode" / "1" / "model.py")).items()
            if command.split()[0].endswith("triton_python_backend_stub")
        ]
        os.kill(stub, signal.SIGKILL)

        health = check_health(server.grpc_url, deadline_s=10)
        # What makes the deep check necessary: Triton's own readiness still answers 200.
        ready = urllib.request.urlopen(f"{server.http_url}/v2/health/ready", timeout=10).status
    assert not health.ok, health
    assert ready == 200


def _decode_inputs(tiny_model, image: Image.Image, max_new_tokens: int) -> list[grpcclient.InferInput]:
    """A request for the decode model itself: what preprocess and encode would hand it for ``image``."""
    prepared = prepare_image(image, "tiny")
    ids = build_input_ids(tiny_model.tokenizer, resolve_prompt("free"), prepared.num_placeholders)
    arrays = {
        "INPUT_IDS": np.array([ids], dtype=np.int64),
        "IMAGE_EMBEDS": tiny_model.image_embeddings(prepared).numpy()[None],
        "MAX_NEW_TOKENS": np.array([[max_new_tokens]], dtype=np.int32),
        "NGRAM_SIZE": np.array([[0]], dtype=np.int32),
        "NGRAM_WINDOW": np.array([[90]], dtype=np.int32),
    }
    inputs = []
    for name, array in arrays.items():
        tensor = grpcclient.InferInput(name, array.shape, np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


def test_a_cancelled_decode_request_leaves_the_batch_and_frees_its_row(triton_server, tiny_model):
    # Straight to the decode model: Triton 2.51 does not forward a cancellation into a running ensemble step
    # (the client's deadline reaches it as the request timeout instead; see test_client.py).
    cancelled_before = cancelled_pages(triton_server)
    page = Image.new("RGB", (300, 400), "white")
    client = grpcclient.InferenceServerClient(triton_server.grpc_url)
    client.start_stream(callback=lambda result, error: None)
    client.async_stream_infer("decode", _decode_inputs(tiny_model, page, max_new_tokens=1900))
    decoding = eventually(lambda: running_pages(triton_server) == 1, within_s=10)
    client.stop_stream(cancel_requests=True)
    client.close()

    assert decoding, "the page never reached the engine: the test proves nothing"
    # Cancelled, not finished at its token limit (which takes about 3 s on one core).
    assert eventually(lambda: cancelled_pages(triton_server) == cancelled_before + 1, within_s=2)
    # The gauge is set after the step that counted the cancellation, so it may trail the counter by one step.
    assert eventually(lambda: running_pages(triton_server) == 0, within_s=2)
