"""Deterministic random checkpoints in the official layout, at reduced sizes.

No one here can download the real weights, so every test and the offline demo run on a checkpoint this
module writes: the official file names, tensor names, ``config.json`` structure and special tokens, with
every size shrunk so that a CPU runs all five modes in seconds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from torch import nn

from dsocr import tokens as tk
from dsocr.model.checkpoint import save_model
from dsocr.model.config import ClipConfig, DecoderConfig, ModelConfig, SamConfig
from dsocr.model.deepseek_ocr import DeepseekOCR

# Text the toy BPE learns its merges from: the prompts and the markup the model emits.
_CORPUS = [
    "<image>\n<|grounding|>Convert the document to markdown.",
    "<image>\nFree OCR.",
    "<image>\nParse the figure.",
    "<image>\nDescribe this image in detail.",
    "<image>\n<|grounding|>OCR this image.",
    "<image>\nLocate <|ref|>the title<|/ref|> in the image.",
    "<|ref|>title<|/ref|><|det|>[[12, 40, 980, 96]]<|/det|>\n# Annual Report 2025",
    "<|ref|>text<|/ref|><|det|>[[12, 120, 980, 400]]<|/det|>\nThe quick brown fox jumps over the lazy dog.",
    "<|ref|>table<|/ref|><|det|>[[50, 420, 950, 700]]<|/det|>\n<table><tr><td>Revenue</td><td>1,234</td></tr></table>",
    "<|ref|>equation<|/ref|><|det|>[[100, 720, 900, 780]]<|/det|>\n\\[ E = m c^{2} \\]",
    "<|ref|>image<|/ref|><|det|>[[100, 800, 500, 990]]<|/det|>",
    "<center>Figure 1: results</center> 0123456789 (a) [b] {c} - * _ | ; : ! ?",
]

_ADDED_TOKENS = tuple(t for t in tk.REQUIRED_SPECIAL_TOKENS if t not in (tk.BOS, tk.EOS, tk.PAD))


def build_tokenizer() -> Tokenizer:
    """A byte-level BPE like DeepSeek's, tiny, with BOS/EOS/PAD at ids 0/1/2 and the OCR special tokens."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=[tk.BOS, tk.EOS, tk.PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 4, trainer)
    tokenizer.add_special_tokens(list(_ADDED_TOKENS))
    return tokenizer


def tiny_config(vocab_size: int) -> ModelConfig:
    """Every official structure (window 14, 640 tiles, 1024 global view, 257 CLIP positions) at toy widths."""
    return ModelConfig(
        sam=SamConfig(
            width=32,
            layers=4,
            heads=2,
            global_attn_indexes=(1, 3),
            downsample_channels=(32, 64),
            neck_channels=16,
            mlp_dim=64,
        ),
        clip=ClipConfig(width=64, layers=2, heads=4, intermediate_size=128),
        decoder=DecoderConfig(
            vocab_size=vocab_size,
            hidden_size=64,
            intermediate_size=128,
            moe_intermediate_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=4,
            n_routed_experts=8,
            n_shared_experts=2,
            num_experts_per_tok=3,
        ),
        projector_input_dim=128,
        n_embed=64,
    )


def padded_vocab_size(tokenizer: Tokenizer) -> int:
    """Like the official 129,280 rows for 128,827 tokens: room past the tokenizer, rounded to 64."""
    return (tokenizer.get_vocab_size(with_added_tokens=True) // 64 + 1) * 64


def write_tokenizer_files(tokenizer: Tokenizer, directory: Path) -> None:
    tokenizer.save(str(directory / "tokenizer.json"))
    added = {
        str(tokenizer.token_to_id(t)): {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for t in tk.REQUIRED_SPECIAL_TOKENS
    }
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": added,
        "bos_token": tk.BOS,
        "eos_token": tk.EOS,
        "pad_token": tk.PAD,
        "unk_token": None,
        "clean_up_tokenization_spaces": False,
        "legacy": True,
        "model_max_length": 8192,
        "tokenizer_class": "LlamaTokenizerFast",
    }
    (directory / "tokenizer_config.json").write_text(
        json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    special = {"bos_token": tk.BOS, "eos_token": tk.EOS, "pad_token": tk.PAD}
    (directory / "special_tokens_map.json").write_text(
        json.dumps(special, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def init_random_(model: nn.Module, seed: int) -> None:
    """Seeded random weights scaled so activations stay O(1): greedy decoding then has clear winners
    instead of near-ties that would make parity tests flaky."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "bias":
                value = 0.02 * noise
            elif param.dim() == 1 and leaf == "weight":  # LayerNorm / RMSNorm scales
                value = 1.0 + 0.1 * noise
            elif param.dim() == 1 or "pos" in name or "embed" in leaf or "embedding" in name:
                value = 0.5 * noise  # learned vectors and position tables
            else:
                fan_in = param[0].numel()
                scale = 4.0 if name.endswith("mlp.gate.weight") else 1.0  # decisive expert routing
                value = scale * noise / math.sqrt(fan_in)
            param.copy_(value)


def write_tiny_checkpoint(directory: str | Path, seed: int = 0, max_shard_bytes: int | None = None) -> Path:
    """Write a deterministic random checkpoint in the official layout; return its directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    config = tiny_config(padded_vocab_size(tokenizer))
    model = DeepseekOCR(config)
    init_random_(model, seed)
    save_model(model.to(torch.bfloat16), directory, max_shard_bytes)
    config_dict = config.to_dict(name_or_path=f"dsocr/tiny-random-seed{seed}")
    (directory / "config.json").write_text(json.dumps(config_dict, indent=2) + "\n", encoding="utf-8")
    generation = {
        "_from_model_config": True,
        "bos_token_id": config.decoder.bos_token_id,
        "eos_token_id": config.decoder.eos_token_id,
    }
    (directory / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n", encoding="utf-8")
    write_tokenizer_files(tokenizer, directory)
    return directory
