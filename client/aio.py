"""The asyncio client: every page its own gRPC stream, all of them multiplexed on one channel.

The ensemble's decode step is decoupled, and Triton serves decoupled models over its bidirectional stream
only. A stream per page (rather than one shared stream) makes a page cancellable on its own: cancelling its
stream cancels that request on the server. That is what a deadline or a caller's ``task.cancel()`` does here.

Triton 2.51 checks an ensemble request for cancellation only between its steps, and does not cancel a step
already running, so a page being decoded carries on. The page's deadline therefore also travels as Triton's
request timeout, which does reach the decode step (``request.timeout()``), for it to stop pages nobody waits
for any more.
"""

from __future__ import annotations

import asyncio
import random

import grpc
from PIL import Image
from tritonclient.grpc.aio import InferenceServerClient

from dsocr.contract import ENSEMBLE, OcrOptions, Recognition

from .errors import OcrRequestError, OcrServerError, PageDeadlineExceeded, ServerUnavailable
from .tensors import PageSource, page_bytes, recognition, request_inputs, requested_outputs

DEFAULT_URL = "127.0.0.1:8001"

#: With this header Triton (≥ 2.49) ends a stream with the gRPC status of the request's error
#: (INVALID_ARGUMENT, UNAVAILABLE, …). Without it a streamed error is a bare message: no code to act on.
STREAM_HEADERS = {"triton_grpc_error": "true"}

#: Statuses after which the same page may succeed later: an overloaded queue, a server starting, stopping or
#: out of reach. A stream cancelled by the server (it does so while shutting down) counts too: this client
#: cancels its streams only when the page is given up on, and then nothing is read from them any more.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})

MAX_BACKOFF_S = 10.0


class _Retryable(Exception):
    pass


class AsyncOcrClient:
    """Pages to the ``deepseek_ocr`` ensemble of a Triton server; ``recognize`` returns a ``Recognition``.

    At most ``max_in_flight`` pages are on the server at once; more wait here. Each page has ``deadline_s``
    from when it is sent, retries and their waits included. A page the server reports UNAVAILABLE for
    (overloaded, or not reachable) is sent again whole, up to ``retries`` more times, after exponentially
    growing waits with jitter (``backoff_s``, doubled each time, so that retrying clients spread out).

    Use it from one event loop; ``OcrClient`` is the thread-safe synchronous face of it.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        model: str = ENSEMBLE,
        *,
        deadline_s: float = 600.0,
        retries: int = 3,
        max_in_flight: int = 32,
        backoff_s: float = 0.5,
    ):
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        if retries < 0:
            raise ValueError(f"retries must not be negative, got {retries}")
        self.url = url
        self.model = model
        self.deadline_s = deadline_s
        self.retries = retries
        self.max_in_flight = max_in_flight
        self.backoff_s = backoff_s
        self._slots = asyncio.Semaphore(max_in_flight)
        self._triton: InferenceServerClient | None = None

    @property
    def triton(self) -> InferenceServerClient:
        """tritonclient's asyncio client (one gRPC channel), made on first use: a channel belongs to the
        event loop it was made in, so it is made in the loop that uses it."""
        if self._triton is None:
            self._triton = InferenceServerClient(self.url)
        return self._triton

    async def recognize(self, image: PageSource, options: OcrOptions | None = None) -> Recognition:
        """OCR one page on the server, as ``OcrModel.recognize`` does in process.

        ``image``: a Pillow image (sent as PNG, so the result equals the in-process one), or encoded image
        bytes or a file path (sent as they are). Raises ``OcrRequestError`` for a page or setting the server
        rejects, ``PageDeadlineExceeded``, ``ServerUnavailable`` once the retries are spent, and
        ``OcrServerError`` for anything else the server reports.
        """
        if isinstance(image, Image.Image):
            data = await asyncio.to_thread(page_bytes, image)  # encoding a page takes tens of milliseconds
        else:
            data = page_bytes(image)
        request = {
            "model_name": self.model,
            "inputs": request_inputs(data, options or OcrOptions()),
            "outputs": requested_outputs(),
        }
        async with self._slots:
            deadline = asyncio.timeout(self.deadline_s)
            try:
                async with deadline:
                    return await self._send_with_retries(request, deadline)
            except TimeoutError:
                if not deadline.expired():
                    raise
                raise PageDeadlineExceeded(
                    f"the page was not done within its {self.deadline_s:g} s deadline and was cancelled"
                ) from None

    async def close(self) -> None:
        if self._triton is not None:
            triton, self._triton = self._triton, None
            await triton.close()

    async def __aenter__(self) -> AsyncOcrClient:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def _send_with_retries(self, request: dict, deadline: asyncio.Timeout) -> Recognition:
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self._backoff(attempt))
            # The time left, as the request timeout the decode step can stop the page by (see the module's doc).
            left_s = deadline.when() - asyncio.get_running_loop().time()
            try:
                return await self._send({**request, "timeout": max(1, int(left_s * 1e6))})
            except _Retryable as error:
                reason = error
        raise ServerUnavailable(f"{self.url}: {reason} (gave up after {self.retries + 1} attempts)")

    def _backoff(self, attempt: int) -> float:
        """Seconds before retry ``attempt`` (from 1): the doubled base, of which a random half is waited."""
        ceiling = min(MAX_BACKOFF_S, self.backoff_s * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    async def _send(self, request: dict) -> Recognition:
        async def one_request():
            yield request

        responses = self.triton.stream_infer(one_request(), headers=STREAM_HEADERS)
        page = None
        try:
            # The server ends the stream right after the page's one response (the request side is already
            # closed), so reading on to the end costs nothing and leaves nothing to cancel.
            async for result, error in responses:
                if error is not None:  # only when the server ignores STREAM_HEADERS
                    raise OcrServerError(f"{self.model}: {error.message()}")
                page = page or recognition(result)
        except grpc.aio.AioRpcError as error:
            raise _page_error(error) from None
        finally:
            # A no-op once the server has ended the stream; otherwise (a deadline, a caller's cancellation)
            # it cancels the page's request on the server.
            responses.cancel()
        if page is None:
            raise OcrServerError(f"{self.model}: the stream ended without a response")
        return page


def _page_error(error: grpc.aio.AioRpcError) -> Exception:
    code, details = error.code(), error.details()
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return OcrRequestError(f"the server rejected the page: {details}")
    if code in RETRYABLE:
        return _Retryable(f"{code.name}: {details}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return PageDeadlineExceeded(f"the server gave up on the page: {details}")
    return OcrServerError(f"{code.name}: {details}")
