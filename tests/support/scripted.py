"""A recognizer that answers with given texts: what a page's content looks like cannot come from a random checkpoint.

Everything downstream of the model (retry, parsing, boxes, crops, output files) is tested with it; the model
itself is tested against independent implementations in test_parity.py.
"""

from dataclasses import dataclass, field

from PIL import Image

from dsocr.contract import OcrOptions, Recognition
from dsocr.documents.pages import PageImage

#: A page as the real model writes it under the markdown prompt: title, figure with caption, table, formula.
GROUNDED_PAGE = (
    "<|ref|>title<|/ref|><|det|>[[100, 40, 900, 90]]<|/det|>\n# Quarterly report\n\n"
    "<|ref|>image<|/ref|><|det|>[[100, 150, 500, 450]]<|/det|>\n"
    "<|ref|>image_caption<|/ref|><|det|>[[100, 460, 500, 490]]<|/det|>\n<center>Figure 1: Revenue</center>\n\n"
    "<|ref|>table<|/ref|><|det|>[[100, 520, 900, 800]]<|/det|>\n"
    '<table><tr><td colspan="2">Q1</td></tr><tr><td>a</td><td>b</td></tr></table>\n\n'
    "<|ref|>equation<|/ref|><|det|>[[100, 850, 600, 900], [620, 850, 900, 900]]<|/det|>\n\\[ E = mc^2 \\]"
    "<｜end▁of▁sentence｜>"
)


@dataclass
class ScriptedRecognizer:
    """Returns ``outputs`` in turn as (text, finish_reason); remembers the options of every call."""

    outputs: list[tuple[str, str]]
    calls: list[OcrOptions] = field(default_factory=list)

    def recognize(self, image, options: OcrOptions) -> Recognition:
        self.calls.append(options)
        text, finish_reason = self.outputs[(len(self.calls) - 1) % len(self.outputs)]
        if isinstance(text, Exception):
            raise text
        return Recognition(
            text=text,
            token_ids=list(range(len(text) // 4)),
            finish_reason=finish_reason,
            vision_tokens=100,
            prompt_tokens=110,
            mean_logprob=-0.25 if finish_reason == "eos" else -2.5,
        )


LOOPING = ("la la la la", "length")
FINISHED = ("Done.<｜end▁of▁sentence｜>", "eos")


def pdf_page(index: int = 0, rotation: int = 0) -> PageImage:
    """A US-letter page rendered at 144 dpi from a MediaBox whose origin is not (0, 0)."""
    size_pt = (792.0, 612.0) if rotation in (90, 270) else (612.0, 792.0)
    image = Image.new("RGB", (int(size_pt[0] * 2), int(size_pt[1] * 2)), "white")
    return PageImage(index, image, 144.0, size_pt, rotation, (100.0, 200.0, 712.0, 992.0), render_seconds=0.01)
