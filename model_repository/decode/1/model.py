"""Triton ``decode``: the continuous-batching engine, decoupled.

``execute`` only hands requests to a queue and returns; one engine thread owns the model and the KV cache,
admits pages between decoding steps, and sends each page its single final response the step it ends. A
cancelled request (client gone, deadline passed) leaves the batch at the next step and frees its cache row.
"""

import json
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

from dsocr.contract import IMAGE_EMBEDS, INPUT_IDS
from dsocr.model.checkpoint import load_model
from dsocr.model.generate import CANCELLED, EOS, LENGTH, DecodeEngine, Sequence
from dsocr.model.inference import DTYPES
from dsocr.model.ngram import rule_for
from dsocr.model.source import resolve
from dsocr.model.tokenizer import Tokenizer
from dsocr.triton.backend import instance_device, model_parameters, use_torch_threads

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
IDLE_WAIT_S = 0.5  # how often an idle engine thread looks up to notice shutdown
CANCEL_CHECK_S = 0.1
PUBLISH_EVERY_S = 0.25  # each metric update is a round trip to the server; a step takes milliseconds


@dataclass
class Page:
    """A request as the engine thread receives it."""

    sender: object
    input_ids: np.ndarray
    image_embeds: np.ndarray
    max_new_tokens: int
    ngram_size: int
    ngram_window: int
    deadline: float | None  # time.monotonic() after which nobody waits for the answer any more
    cancelled: bool = False
    next_cancel_check: float = 0.0

    def abandoned(self) -> bool:
        """Cancelled, or past the timeout its client set.

        Triton 2.51 does not pass a cancellation on to an ensemble step that is already running, but the
        request's timeout does reach it: clients send their remaining deadline as that timeout. Asking Triton
        about cancellation is a round trip to the server process, so it is asked every CANCEL_CHECK_S, not
        at every step.
        """
        now = time.monotonic()
        if now >= self.next_cancel_check:
            self.next_cancel_check = now + CANCEL_CHECK_S
            self.cancelled = self.sender.is_cancelled()
        return self.cancelled or (self.deadline is not None and now > self.deadline)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        if not pb_utils.using_decoupled_model_transaction_policy(config):
            raise pb_utils.TritonModelException(
                "decode must be decoupled: model_transaction_policy { decoupled: true }"
            )
        parameters = model_parameters(args)
        use_torch_threads(parameters)
        source = resolve(parameters["checkpoint"])
        self.model = load_model(
            source, instance_device(parameters, args), DTYPES[parameters["dtype"]], parts=("decoder",)
        )
        self.tokenizer = Tokenizer.from_dir(source.path)
        self.engine = DecodeEngine(
            self.model.decoder,
            self.tokenizer.eos_id,
            max_running=int(parameters["max_running_pages"]),
            max_context=int(parameters["max_context_tokens"]),
            batching=parameters["batching"],
        )
        self.max_waiting = int(parameters["max_waiting_pages"])
        self.metrics = EngineMetrics(args["model_name"])
        self.metrics.kv_cache_bytes.set(self.engine.cache.nbytes)
        self.inbox: queue.SimpleQueue[Page] = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="decode-engine", daemon=True)
        self.thread.start()

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            timeout_us = request.timeout()
            deadline = time.monotonic() + timeout_us / 1e6 if timeout_us else None
            try:
                page = Page(
                    sender,
                    _input(request, INPUT_IDS),
                    _input(request, IMAGE_EMBEDS),
                    *(
                        int(_input(request, name).reshape(-1)[0])
                        for name in ("MAX_NEW_TOKENS", "NGRAM_SIZE", "NGRAM_WINDOW")
                    ),
                    deadline,
                )
            except ValueError as error:
                _fail(sender, str(error), pb_utils.TritonError.INVALID_ARG)
                continue
            self.inbox.put(page)
        return None

    def finalize(self):
        self.stopping.set()
        self.thread.join()

    def _run(self):
        while not self.stopping.is_set():
            self._take_new_pages(block=self.engine.idle)
            try:
                ended = self.engine.step()
            except Exception as error:  # out of memory, a bug: fail these pages, keep serving the next ones
                pb_utils.Logger.log_error(f"decode step failed, failing {len(self.engine.running)} pages: {error!r}")
                for sequence in self.engine.clear():
                    _fail(sequence.tag.sender, f"decoding failed: {error}", pb_utils.TritonError.INTERNAL)
                ended = []
            for sequence in ended:
                self._finish(sequence)
            self.metrics.observe(self.engine, now=self.engine.idle)
        self._take_new_pages(block=False)
        for sequence in self.engine.clear():
            _fail(sequence.tag.sender, "the server is shutting down", pb_utils.TritonError.UNAVAILABLE)

    def _take_new_pages(self, block: bool):
        """Submit every page that has arrived; when ``block``, wait up to IDLE_WAIT_S for the first."""
        try:
            page = self.inbox.get(timeout=IDLE_WAIT_S) if block else self.inbox.get_nowait()
            while True:
                self._submit(page)
                page = self.inbox.get_nowait()
        except queue.Empty:
            return

    def _submit(self, page: Page):
        if len(self.engine.waiting) >= self.max_waiting:
            self.metrics.rejected.increment(1)
            _fail(
                page.sender,
                f"decode queue is full ({self.max_waiting} pages waiting)",
                pb_utils.TritonError.UNAVAILABLE,
            )
            return
        try:
            ngram = rule_for(self.tokenizer, page.ngram_size, page.ngram_window)
            device = self.engine.cache.k.device
            embeds = self.model.embed_prompt(
                torch.tensor(page.input_ids, device=device),
                self.tokenizer.image_id,
                torch.tensor(page.image_embeds, device=device),
            )
            self.engine.submit(Sequence(embeds, page.max_new_tokens, ngram, page.abandoned, tag=page))
        except ValueError as error:
            _fail(page.sender, str(error), pb_utils.TritonError.INVALID_ARG)

    def _finish(self, sequence: Sequence):
        page = sequence.tag
        self.metrics.pages[sequence.finish_reason].increment(1)
        if sequence.finish_reason == CANCELLED:
            _fail(page.sender, "the request was cancelled or ran past its timeout", pb_utils.TritonError.CANCELLED)
            return
        self.metrics.generated_tokens.increment(len(sequence.token_ids))
        outputs = {
            "TEXT": np.array([[self.tokenizer.decode(sequence.token_ids).encode()]], dtype=np.object_),
            "TOKEN_IDS": np.array([sequence.token_ids], dtype=np.int64).reshape(1, -1),
            "FINISH_REASON": np.array([[sequence.finish_reason.encode()]], dtype=np.object_),
            "VISION_TOKENS": np.array([[len(page.image_embeds)]], dtype=np.int32),
            "PROMPT_TOKENS": np.array([[len(page.input_ids)]], dtype=np.int32),
            "MEAN_LOGPROB": np.array([[sequence.mean_logprob]], dtype=np.float32),
        }
        response = pb_utils.InferenceResponse([pb_utils.Tensor(name, value) for name, value in outputs.items()])
        page.sender.send(response, flags=FINAL)


class EngineMetrics:
    """The engine's state on Triton's metrics endpoint, next to Triton's own ``nv_*`` series."""

    def __init__(self, model_name: str):
        self.families = []  # a Metric stops working once its MetricFamily is garbage-collected
        labels = {"model": model_name}
        gauge, counter = pb_utils.MetricFamily.GAUGE, pb_utils.MetricFamily.COUNTER
        self.running = self._family("dsocr_decode_running_pages", "Pages in the running batch", gauge).Metric(labels)
        self.waiting = self._family("dsocr_decode_waiting_pages", "Pages waiting for a KV cache row", gauge).Metric(
            labels
        )
        self.peak_running = self._family(
            "dsocr_decode_peak_running_pages", "Largest running batch since the model loaded", gauge
        ).Metric(labels)
        self.kv_cache_bytes = self._family(
            "dsocr_decode_kv_cache_bytes", "KV cache memory, allocated at load", gauge
        ).Metric(labels)
        self.steps = self._family("dsocr_decode_steps_total", "Batched decoding steps", counter).Metric(labels)
        self.generated_tokens = self._family(
            "dsocr_decode_generated_tokens_total", "Tokens generated for finished pages", counter
        ).Metric(labels)
        self.rejected = self._family(
            "dsocr_decode_rejected_pages_total", "Pages refused because the waiting line was full", counter
        ).Metric(labels)
        pages = self._family("dsocr_decode_pages_total", "Pages that left the engine, by finish reason", counter)
        self.pages = {reason: pages.Metric({**labels, "finish_reason": reason}) for reason in (EOS, LENGTH, CANCELLED)}
        self._steps_seen = 0
        self._next_publish = 0.0

    def _family(self, name: str, description: str, kind):
        family = pb_utils.MetricFamily(name=name, description=description, kind=kind)
        self.families.append(family)
        return family

    def observe(self, engine: DecodeEngine, now: bool = False):
        """Publish the engine's state, at most every PUBLISH_EVERY_S unless ``now``."""
        if not now and time.monotonic() < self._next_publish:
            return
        self._next_publish = time.monotonic() + PUBLISH_EVERY_S
        self.running.set(len(engine.running))
        self.waiting.set(len(engine.waiting))
        self.peak_running.set(engine.peak_running)
        self.steps.increment(engine.steps - self._steps_seen)
        self._steps_seen = engine.steps


def _input(request, name: str) -> np.ndarray:
    """The one page of a batch-of-one input, without its batch dimension."""
    value = pb_utils.get_input_tensor_by_name(request, name).as_numpy()
    if len(value) != 1:
        raise ValueError(f"decode takes one page per request; {name} holds {len(value)}")
    return value[0]


def _fail(sender, message: str, code):
    sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code)), flags=FINAL)
