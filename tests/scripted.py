"""A recognizer that answers with given texts: what a page's content looks like cannot come from a random checkpoint.

Everything downstream of the model (retry, parsing, boxes, crops, output files) is tested with it; the model
itself is tested against independent implementations in test_parity.py.
"""

from dataclasses import dataclass, field

from dsocr.inference import Recognition

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
    """Returns ``outputs`` in turn as (text, finish_reason); remembers the settings of every call."""

    outputs: list[tuple[str, str]]
    calls: list[dict] = field(default_factory=list)

    def recognize(self, image, **settings) -> Recognition:
        self.calls.append(settings)
        text, finish_reason = self.outputs[(len(self.calls) - 1) % len(self.outputs)]
        if isinstance(text, Exception):
            raise text
        return Recognition(
            text=text,
            token_ids=list(range(len(text) // 4)),
            finish_reason=finish_reason,
            vision_tokens=100,
            prompt_tokens=110,
        )
