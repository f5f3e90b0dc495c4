"""Every parameter of a training run, in one model: the CLI fills it, the trainer reads it, the lineage records it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dsocr.contract import DEFAULT_MAX_TILES, MIN_TILES, ModeName

#: Unsloth's DeepSeek-OCR recipe: every projection of the decoder's attention and (shared and routed) experts.
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
#: Model parts ``--freeze`` takes, by the parameter-name prefixes they cover.
FREEZABLE = {
    "sam": ("encoder.sam_model.",),
    "clip": ("encoder.vision_model.",),
    "encoder": ("encoder.",),
    "decoder": ("decoder.",),
}
Freezable = Literal["sam", "clip", "encoder", "decoder"]


class TrainConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(description="base checkpoint directory or hub id")
    revision: str | None = None
    data: str = Field(description="dataset folder (manifest.jsonl)")
    out: str = Field(description="output checkpoint folder; also holds the resume state")
    mode: ModeName = "tiny"  # type: ignore[valid-type]
    prompt: str = "free"
    max_tiles: int = Field(DEFAULT_MAX_TILES, ge=MIN_TILES)
    full: bool = False
    lora_rank: int | None = Field(None, ge=1)
    lora_alpha: float | None = Field(None, gt=0)
    lora_targets: tuple[str, ...] = DEFAULT_LORA_TARGETS
    freeze: tuple[Freezable, ...] = ()
    steps: int | None = Field(None, ge=1)
    epochs: float | None = Field(None, gt=0)
    batch: int = Field(2, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(2e-4, gt=0)
    warmup_steps: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    dtype: Literal["fp32", "bf16", "fp16"] = "fp32"
    save_dtype: Literal["fp32", "bf16"] = "bf16"
    device: str = "cpu"
    gradient_checkpointing: bool = False
    eval_data: str | None = None
    eval_every: int = Field(0, ge=0)
    eval_pages: int = Field(32, ge=1)
    save_every: int = Field(0, ge=0)
    seed: int = 0
    mlflow: str | None = None

    @model_validator(mode="after")
    def _one_method_one_length(self) -> TrainConfig:
        if self.full and self.lora_rank is not None:
            raise ValueError("choose --full or --lora-rank, not both")
        if self.steps is not None and self.epochs is not None:
            raise ValueError("choose --steps or --epochs, not both")
        if self.eval_every and not self.eval_data:
            raise ValueError("--eval-every needs --eval-data")
        return self

    @property
    def method(self) -> Literal["full", "lora"]:
        return "full" if self.full else "lora"

    @property
    def rank(self) -> int:
        return self.lora_rank or 16

    @property
    def pages_per_step(self) -> int:
        return self.batch * self.grad_accum

    def total_steps(self, dataset_pages: int) -> int:
        if self.steps is not None:
            return self.steps
        return max(1, round((self.epochs or 1.0) * dataset_pages / self.pages_per_step))
