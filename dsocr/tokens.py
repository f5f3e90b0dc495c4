"""The text of DeepSeek-OCR's special tokens: what the prompts and the model's output are written in.

Torch- and tokenizer-free, so that parsing the model's output (``dsocr.documents.postprocess``) needs neither.
"""

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
PAD = "<｜▁pad▁｜>"
IMAGE = "<image>"
GROUNDING = "<|grounding|>"
REF_OPEN, REF_CLOSE = "<|ref|>", "<|/ref|>"
DET_OPEN, DET_CLOSE = "<|det|>", "<|/det|>"
TD_OPEN, TD_CLOSE = "<td>", "</td>"
TR_OPEN, TR_CLOSE = "<tr>", "</tr>"

#: Added tokens every DeepSeek-OCR tokenizer must carry, in the order the official file lists them.
REQUIRED_SPECIAL_TOKENS = (
    BOS,
    EOS,
    PAD,
    IMAGE,
    REF_OPEN,
    REF_CLOSE,
    DET_OPEN,
    DET_CLOSE,
    GROUNDING,
    TD_OPEN,
    TD_CLOSE,
    TR_OPEN,
    TR_CLOSE,
)
