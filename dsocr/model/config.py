"""Model configuration read from the official ``config.json``.

The official checkpoint hard-codes every vision size in its code and only mirrors them,
informationally, in ``vision_config``. dsocr reads them from there instead, so one loader serves both
the published checkpoint and the reduced random checkpoints the tests generate. Fields the official file
does not carry (window size, neck width, MLP widths) are optional extras whose defaults are the
official values.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

SAM_KEY = "sam_vit_b"
CLIP_KEY = "clip-l-14-224"


@dataclass(frozen=True)
class SamConfig:
    width: int = 768
    layers: int = 12
    heads: int = 12
    global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    downsample_channels: tuple[int, int] = (512, 1024)
    window_size: int = 14
    neck_channels: int = 256
    mlp_dim: int = 3072
    patch_size: int = 16
    image_size: int = 1024  # the size the absolute position table is trained for

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def out_channels(self) -> int:
        return self.downsample_channels[-1]


@dataclass(frozen=True)
class ClipConfig:
    width: int = 1024
    layers: int = 24
    heads: int = 16
    intermediate_size: int = 4096
    image_size: int = 224
    patch_size: int = 14

    @property
    def num_positions(self) -> int:
        return (self.image_size // self.patch_size) ** 2 + 1


@dataclass(frozen=True)
class DecoderConfig:
    vocab_size: int = 129280
    hidden_size: int = 1280
    intermediate_size: int = 6848
    moe_intermediate_size: int = 896
    num_hidden_layers: int = 12
    num_attention_heads: int = 10
    num_key_value_heads: int = 10
    n_routed_experts: int = 64
    n_shared_experts: int = 2
    num_experts_per_tok: int = 6
    first_k_dense_replace: int = 1
    norm_topk_prob: bool = False
    routed_scaling_factor: float = 1.0
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    max_position_embeddings: int = 8192
    bos_token_id: int = 0
    eos_token_id: int = 1

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


@dataclass(frozen=True)
class ModelConfig:
    sam: SamConfig = field(default_factory=SamConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    projector_input_dim: int = 2048
    n_embed: int = 1280

    @classmethod
    def from_dict(cls, raw: dict) -> ModelConfig:
        vision = raw.get("vision_config", {})
        widths = vision.get("width", {})
        sam_raw = dict(widths.get(SAM_KEY, {}))
        clip_raw = dict(widths.get(CLIP_KEY, {}))
        if "image_size" in vision:
            sam_raw.setdefault("image_size", vision["image_size"])
        sam = _pick(SamConfig, sam_raw)
        if "mlp_dim" not in sam_raw:
            sam = dataclasses.replace(sam, mlp_dim=4 * sam.width)
        clip = _pick(ClipConfig, clip_raw)
        if "intermediate_size" not in clip_raw:
            clip = dataclasses.replace(clip, intermediate_size=4 * clip.width)
        # The language model keys live at the top level (what the official code reads) and again
        # under language_config; the top level wins.
        decoder = _pick(DecoderConfig, {**raw.get("language_config", {}), **raw})
        projector = raw.get("projector_config", {})
        config = cls(
            sam=sam,
            clip=clip,
            decoder=decoder,
            projector_input_dim=projector.get("input_dim", 2048),
            n_embed=projector.get("n_embed", decoder.hidden_size),
        )
        config.validate()
        return config

    @classmethod
    def from_file(cls, path: str | Path) -> ModelConfig:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def validate(self) -> None:
        problems = []
        if self.clip.width != self.sam.out_channels:
            problems.append(
                f"CLIP width {self.clip.width} must equal SAM's last downsample channels {self.sam.out_channels}"
            )
        if self.projector_input_dim != self.clip.width + self.sam.out_channels:
            problems.append(
                f"projector input_dim {self.projector_input_dim} must be CLIP width + SAM channels "
                f"({self.clip.width} + {self.sam.out_channels})"
            )
        if self.n_embed != self.decoder.hidden_size:
            problems.append(f"projector n_embed {self.n_embed} must equal hidden_size {self.decoder.hidden_size}")
        if self.decoder.hidden_size % self.decoder.num_attention_heads:
            problems.append("hidden_size must be divisible by num_attention_heads")
        if self.decoder.num_key_value_heads != self.decoder.num_attention_heads:
            problems.append("only plain multi-head attention (num_key_value_heads == num_attention_heads) is supported")
        if any(not 0 <= i < self.sam.layers for i in self.sam.global_attn_indexes):
            problems.append(
                f"global_attn_indexes {self.sam.global_attn_indexes} out of range for {self.sam.layers} layers"
            )
        if problems:
            raise ValueError("invalid model config: " + "; ".join(problems))

    def to_dict(self, name_or_path: str = "deepseek-ai/DeepSeek-OCR") -> dict:
        """The official config.json structure, with this config's sizes."""
        d = self.decoder
        language = {
            "architectures": ["DeepseekV2ForCausalLM"],
            "vocab_size": d.vocab_size,
            "hidden_size": d.hidden_size,
            "intermediate_size": d.intermediate_size,
            "moe_intermediate_size": d.moe_intermediate_size,
            "num_hidden_layers": d.num_hidden_layers,
            "num_attention_heads": d.num_attention_heads,
            "num_key_value_heads": d.num_key_value_heads,
            "n_routed_experts": d.n_routed_experts,
            "n_shared_experts": d.n_shared_experts,
            "num_experts_per_tok": d.num_experts_per_tok,
            "first_k_dense_replace": d.first_k_dense_replace,
            "topk_method": "greedy",
            "n_group": 1,
            "topk_group": 1,
            "use_mla": False,
            "kv_lora_rank": None,
            "q_lora_rank": None,
            "qk_nope_head_dim": 0,
            "qk_rope_head_dim": 0,
            "v_head_dim": 0,
            "max_position_embeddings": d.max_position_embeddings,
            "bos_token_id": d.bos_token_id,
            "eos_token_id": d.eos_token_id,
            "lm_head": True,
            "rm_head": False,
            "torch_dtype": "bfloat16",
        }
        sam = dataclasses.asdict(self.sam)
        sam_image_size = sam.pop("image_size")
        sam["global_attn_indexes"] = list(self.sam.global_attn_indexes)
        sam["downsample_channels"] = list(self.sam.downsample_channels)
        return {
            "_name_or_path": name_or_path,
            "architectures": ["DeepseekOCRForCausalLM"],
            "model_type": "deepseek_vl_v2",
            "candidate_resolutions": [[1024, 1024]],
            "global_view_pos": "head",
            "tile_tag": "2D",
            "torch_dtype": "bfloat16",
            "projector_config": {
                "input_dim": self.projector_input_dim,
                "model_type": "mlp_projector",
                "n_embed": self.n_embed,
                "projector_type": "linear",
            },
            "vision_config": {
                "image_size": sam_image_size,
                "model_name": "deeplip_b_l",
                "model_type": "vision",
                "width": {CLIP_KEY: dataclasses.asdict(self.clip), SAM_KEY: sam},
            },
            "language_config": language,
            **{k: v for k, v in language.items() if k != "architectures"},
        }


def _pick(cls, raw: dict):
    """Build a dataclass from the keys of ``raw`` it knows, converting lists to tuples."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in names and v is not None}
    return cls(**values)
