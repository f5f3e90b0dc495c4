"""ocr_pages with concurrency > 1: pages recognised in threads, results still in page order, a bounded window."""

import threading
import time
from dataclasses import dataclass, field

from PIL import Image

from dsocr.contract import RETRY_NGRAM, OcrOptions, Recognition
from dsocr.documents.errors import PageError
from dsocr.documents.pages import PageImage
from dsocr.documents.pipeline import ocr_pages

FINISHED = "eos"
AT_THE_LIMIT = "length"


def page(index: int) -> PageImage:
    # The width carries the page number to the recognizer, which sees only the image.
    return PageImage(index, Image.new("RGB", (100 + index, 50), "white"))


def page_number(image: Image.Image) -> int:
    return image.width - 100


@dataclass
class SleepingRecognizer:
    """Answers ``page <n>`` after ``delays[n]`` seconds; counts how many pages it works on at once.

    ``fail`` pages raise; pages in ``loop_once`` reach the token limit under the default n-gram rule and
    finish under the retry rule.
    """

    delays: dict[int, float] = field(default_factory=dict)
    fail: set[int] = field(default_factory=set)
    loop_once: set[int] = field(default_factory=set)
    threads: set[str] = field(default_factory=set)
    running: int = 0
    most_running: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def recognize(self, image, options) -> Recognition:
        number = page_number(image)
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            self.threads.add(threading.current_thread().name)
        try:
            time.sleep(self.delays.get(number, 0.01))
            if number in self.fail:
                raise RuntimeError(f"page {number} broke the model")
            retried = (options.ngram_size, options.ngram_window) == RETRY_NGRAM
            finish_reason = AT_THE_LIMIT if number in self.loop_once and not retried else FINISHED
            return Recognition(
                f"page {number}", [1, 2, 3], finish_reason, vision_tokens=100, prompt_tokens=110, mean_logprob=-0.5
            )
        finally:
            with self.lock:
                self.running -= 1


def results(recognizer, pages, concurrency, **options):
    return [result for _, result in ocr_pages(recognizer, pages, OcrOptions(**options), concurrency=concurrency)]


def test_results_come_in_page_order_when_later_pages_finish_first():
    recognizer = SleepingRecognizer(delays={0: 0.3, 1: 0.2, 2: 0.1, 3: 0.0})
    pages = [page(n) for n in range(6)]
    yielded = list(ocr_pages(recognizer, pages, OcrOptions(), concurrency=4))
    assert [p.index for p, _ in yielded] == list(range(6))
    assert [r.markdown for _, r in yielded] == [f"page {n}" for n in range(6)]
    assert all(p is original for (p, _), original in zip(yielded, pages))


def test_up_to_concurrency_pages_are_recognised_at_once_and_never_more():
    recognizer = SleepingRecognizer(delays=dict.fromkeys(range(12), 0.05))
    results(recognizer, [page(n) for n in range(12)], concurrency=3)
    assert recognizer.most_running == 3


def test_concurrent_pages_take_a_fraction_of_the_sequential_time():
    recognizer = SleepingRecognizer(delays=dict.fromkeys(range(8), 0.1))
    started = time.perf_counter()
    results(recognizer, [page(n) for n in range(8)], concurrency=8)
    assert time.perf_counter() - started < 0.5  # one at a time would take 0.8 s


def test_pages_are_read_at_most_concurrency_ahead_of_the_page_the_caller_has():
    # Rendered pages are large: a window that read the whole document ahead would hold it all in memory.
    read = 0

    def rendered_pages():
        nonlocal read
        for n in range(10):
            read += 1
            yield page(n)

    handed_out = 0
    for _ in ocr_pages(SleepingRecognizer(), rendered_pages(), OcrOptions(), concurrency=3):
        handed_out += 1
        assert read - handed_out <= 3 - 1  # the page in the caller's hands and at most 2 more in flight
    assert handed_out == 10


def test_concurrency_one_recognises_pages_one_after_another_in_the_callers_thread():
    recognizer = SleepingRecognizer()
    got = results(recognizer, [page(n) for n in range(4)], concurrency=1)
    assert [r.markdown for r in got] == [f"page {n}" for n in range(4)]
    assert recognizer.most_running == 1
    assert recognizer.threads == {threading.current_thread().name}


def test_a_failing_page_is_a_failed_result_and_the_pages_around_it_are_recognised():
    recognizer = SleepingRecognizer(fail={1})
    got = results(recognizer, [page(n) for n in range(4)], concurrency=3, retry=False)
    assert [r.status for r in got] == ["ok", "failed", "ok", "ok"]
    assert got[1].error.code == "recognition_failed"
    assert "page 1 broke the model" in got[1].error.message


def test_each_page_at_the_token_limit_gets_its_own_retry():
    recognizer = SleepingRecognizer(loop_once={0, 2})
    got = results(recognizer, [page(n) for n in range(4)], concurrency=4)
    assert [r.attempts for r in got] == [2, 1, 2, 1]
    assert [r.status for r in got] == ["ok"] * 4


def test_a_page_that_failed_to_render_is_passed_through_as_failed_without_recognition():
    broken = PageImage(1, error=PageError("render_timeout", "took too long"))
    got = results(SleepingRecognizer(), [page(0), broken, page(2)], concurrency=2)
    assert [(r.index, r.status) for r in got] == [(0, "ok"), (1, "failed"), (2, "ok")]
    assert got[1].error.code == "render_timeout"


def test_a_caller_that_stops_early_does_not_wait_for_the_pages_still_running():
    recognizer = SleepingRecognizer(delays={0: 0.0, 1: 1.0, 2: 1.0})
    pages = ocr_pages(recognizer, [page(n) for n in range(3)], OcrOptions(), concurrency=3)
    next(pages)
    started = time.perf_counter()
    pages.close()
    assert time.perf_counter() - started < 0.5
