"""A dataset's pages as training examples: each page opened, preprocessed for the mode and tokenized once."""

from __future__ import annotations

from dsocr.data.dataset import Dataset
from dsocr.model.preprocess import prepare_image
from dsocr.model.tokenizer import Tokenizer
from dsocr.training.batch import Example, make_example

#: Examples kept in memory: a Tiny-mode page is 3 MB of pixels, so small sets are prepared once and
#: large ones (where preprocessing is a few milliseconds of a step's second) are prepared on every visit.
CACHED_PAGES = 512


class TrainingPages:
    def __init__(self, dataset: Dataset, tokenizer: Tokenizer, mode: str, prompt: str, config):
        self.dataset = dataset
        self.tokenizer = tokenizer
        self.mode = mode
        self.prompt = prompt
        self.max_tiles = config.max_tiles
        self._cache: dict[int, Example] | None = {} if len(dataset) <= CACHED_PAGES else None

    def __len__(self) -> int:
        return len(self.dataset)

    def image(self, index: int):
        return self.dataset.open_page(index)

    def truth(self, index: int) -> str:
        return self.dataset.entries[index].ground_truth

    def example(self, index: int) -> Example:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        prepared = prepare_image(self.image(index), self.mode, max_tiles=self.max_tiles)
        example = make_example(self.tokenizer, prepared, self.prompt, self.truth(index))
        if self._cache is not None:
            self._cache[index] = example
        return example
