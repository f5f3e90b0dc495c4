"""``dsocr train``: its flags are ``TrainConfig``'s fields, so the config model is the one description of them."""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from pathlib import Path

from pydantic import ValidationError

from dsocr.training.config import TrainConfig

#: Flags with a short form people expect from other trainers.
ALIASES = {"gradient_checkpointing": ["--gradient-checkpointing"]}


def add_train(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Fine-tune a checkpoint on a dataset (a folder with manifest.jsonl, e.g. from `dsocr data synth`): LoRA "
        "adapters by default (--lora-rank), or every weight with --full. Writes a checkpoint in the official layout "
        "(adapters merged) with lineage.json into --out; --save-every N keeps a resume state there."
    )
    parser.add_argument("--config", type=Path, help="a JSON file of these settings; flags given override it")
    parser.add_argument("--resume", action="store_true", help="continue the unfinished run in --out")
    for name, field in TrainConfig.model_fields.items():
        parser.add_argument(*_flags(name), dest=name, default=None, help=field.description, **_kind(field.annotation))
    parser.set_defaults(run=_run_train)
    commands = parser.add_subparsers(dest="train_command", metavar="COMMAND")
    merge = commands.add_parser("merge", help="merge a run's LoRA adapter into its base model's weights")
    merge.add_argument("adapter", type=Path, help="the output folder of a LoRA run (its adapter/ folder)")
    merge.add_argument("--into", type=Path, required=True, dest="merged_out", help="folder for the merged checkpoint")
    merge.add_argument("--base", default=None, help="the base checkpoint (default: the one the run recorded)")
    merge.set_defaults(run=_run_merge)


def _flags(name: str) -> list[str]:
    return ["--" + name.replace("_", "-"), *[a for a in ALIASES.get(name, []) if a != "--" + name.replace("_", "-")]]


def _kind(annotation) -> dict:
    """argparse settings for a field's type: booleans as --x/--no-x, literals as choices, tuples as lists."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    if typing.get_origin(annotation) is tuple:
        return {"nargs": "+", **_kind(args[0])}
    if typing.get_origin(annotation) is typing.Literal:
        return {"choices": typing.get_args(annotation)}
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return _kind(args[0])
    if annotation in (int, float):
        return {"type": annotation}
    return {}


def config_from_arguments(args: argparse.Namespace) -> TrainConfig:
    settings = json.loads(args.config.read_text(encoding="utf-8")) if args.config else {}
    settings.update({name: getattr(args, name) for name in TrainConfig.model_fields if getattr(args, name) is not None})
    try:
        return TrainConfig(**settings)
    except ValidationError as err:
        problems = [
            f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}" if e["loc"] else e["msg"]
            for e in err.errors()
        ]
        raise ValueError("; ".join(problems)) from None


def _run_train(args: argparse.Namespace) -> int:
    from dsocr.training.trainer import train

    result = train(config_from_arguments(args), resume=args.resume)
    evaluated = f", eval CER {result.final_eval['cer']:.3f}" if result.final_eval else ""
    print(
        f"dsocr: trained {result.steps} steps in {result.seconds:.0f} s ({result.pages_per_s:.1f} pages/s, "
        f"{result.tokens_per_s:.0f} tokens/s), final loss {result.final_loss:.4f}{evaluated} -> {result.out}",
        file=sys.stderr,
    )
    return 0


def _run_merge(args: argparse.Namespace) -> int:
    from dsocr.training.output import merge_adapter

    merge_adapter(args.adapter, args.merged_out, base=args.base)
    print(f"dsocr: merged {args.adapter} -> {args.merged_out}", file=sys.stderr)
    return 0
