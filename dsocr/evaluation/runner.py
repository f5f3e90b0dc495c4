"""A dataset's pages through an engine, scored against their ground truth, one ``PageScore`` per manifest entry.

Two engines: a ``Recognizer`` (the model in process or a server client), run through the same page pipeline as
``dsocr ocr`` (retry at the token limit, grounding tags parsed away, the clean Markdown scored); or a folder of
predictions from any other engine, one Markdown file per page, as OmniDocBench takes them. A page that cannot be
opened, recognised or found is a failed page; the run goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from dsocr.contract import OcrOptions, Recognizer
from dsocr.data.dataset import Dataset, DatasetError, PageEntry
from dsocr.documents.errors import PageError
from dsocr.documents.pages import PageImage
from dsocr.documents.pipeline import ocr_pages
from dsocr.evaluation.outputs import write_results
from dsocr.evaluation.scoring import PageScore, score_page
from dsocr.evaluation.summary import summarize, timing

#: Counts a text's tokens in the model's tokenizer (for the compression ratio), or None when no tokenizer is known.
TokenCounter = Callable[[str], int] | None


def token_counter(tokenizer) -> TokenCounter:
    """``len(tokenizer.encode(text))`` for a tokenizer (``dsocr.model.tokenizer.Tokenizer``), None without one."""
    return None if tokenizer is None else lambda text: len(tokenizer.encode(text))


def recognize_dataset(
    dataset: Dataset,
    recognizer: Recognizer,
    options: OcrOptions,
    *,
    count_tokens: TokenCounter = None,
    concurrency: int = 1,
) -> Iterator[PageScore]:
    """Score every page as the recognizer reads it; with ``concurrency`` above 1, that many pages at once."""
    for page, result in ocr_pages(recognizer, _page_images(dataset), options, concurrency=concurrency):
        entry = dataset[page.index]
        seconds = (result.render_seconds or 0.0) + (result.recognize_seconds or 0.0)
        yield score_page(
            page.index,
            entry.source,
            entry.page,
            entry.ground_truth,
            result.markdown,
            status=result.status,
            tags=entry.tags,
            error=result.error and f"{result.error.code}: {result.error.message}",
            finish_reason=result.finish_reason,
            attempts=result.attempts,
            vision_tokens=result.vision_tokens if result.status != "failed" else None,
            generated_tokens=result.generated_tokens if result.status != "failed" else None,
            mean_logprob=None if result.mean_logprob is None else round(result.mean_logprob, 6),
            truth_tokens=count_tokens(entry.ground_truth) if count_tokens else None,
            seconds=seconds,
        )


def score_predictions(dataset: Dataset, predictions: Path, *, count_tokens: TokenCounter = None) -> Iterator[PageScore]:
    """Score ``predictions/<name>.md`` for each page (``prediction_name``; the bare file name also counts)."""
    for index, entry in enumerate(dataset):
        name = prediction_name(entry)
        found = next((p for p in (predictions / name, predictions / PurePosixPath(name).name) if p.is_file()), None)
        details = {"truth_tokens": count_tokens(entry.ground_truth) if count_tokens else None}
        if found is None:
            yield score_page(
                index, entry.source, entry.page, entry.ground_truth, "", status="failed", tags=entry.tags,
                error=f"missing_prediction: no {name} in {predictions}", **details,
            )  # fmt: skip
            continue
        text = found.read_text(encoding="utf-8", errors="replace")
        yield score_page(
            index, entry.source, entry.page, entry.ground_truth, text, tags=entry.tags, finish_reason="eos", **details
        )


def prediction_name(entry: PageEntry) -> str:
    """The Markdown file a page's prediction is read from: ``images/a.png`` → ``images/a.md``, page 3 of
    ``docs/b.pdf`` → ``docs/b_3.md``."""
    source = PurePosixPath(entry.source)
    if source.suffix.lower() == ".pdf":
        return str(source.with_name(f"{source.stem}_{entry.page}.md"))
    return str(source.with_suffix(".md"))


def _page_images(dataset: Dataset) -> Iterator[PageImage]:
    for index in range(len(dataset)):
        started = time.perf_counter()
        try:
            image = dataset.open_page(index)
        except (DatasetError, OSError) as error:
            yield PageImage(index, error=PageError("render_failed", str(error)))
            continue
        yield PageImage(index, image, render_seconds=time.perf_counter() - started)


@dataclass
class Evaluation:
    """A finished run: what was evaluated, the aggregates, the timings and every page's score."""

    header: dict  # dataset (name, sha256, pages), engine, options
    summary: dict
    timings: dict
    scores: list[PageScore]

    def write(self, out: Path) -> Path:
        return write_results(out, self.header, self.summary, self.timings, self.scores)


def evaluate(
    dataset: Dataset, scores: Iterable[PageScore], engine: dict, options: OcrOptions | None, progress: bool | None
) -> Evaluation:
    """Collect ``scores`` (from ``recognize_dataset`` or ``score_predictions``) under a progress bar, and sum up."""
    started = time.perf_counter()
    collected = list(tqdm(scores, total=len(dataset), desc="eval", unit="page", disable=_hidden(progress)))
    header = {
        "dataset": {"name": dataset.root.resolve().name, "sha256": dataset.hash(), "pages": len(dataset)},
        "engine": engine,
        "options": options.model_dump(mode="json") if options else None,
    }
    return Evaluation(header, summarize(collected), timing(collected, time.perf_counter() - started), collected)


def _hidden(progress: bool | None) -> bool | None:
    return None if progress is None else not progress  # None: tqdm shows the bar only on a terminal
