"""``dsocr data``: make datasets (a folder with manifest.jsonl and its pages) for training and evaluation."""

from __future__ import annotations

import argparse
from pathlib import Path

from dsocr.arguments import positive


def add_data(parser: argparse.ArgumentParser) -> None:
    from dsocr.data.synth import PRESETS

    commands = parser.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    synth = commands.add_parser("synth", help="write synthetic pages with exact ground truth")
    synth.description = (
        "Draw synthetic pages with the installed TrueType fonts (DejaVu, Liberation, FreeFont, Noto) and write "
        "them with their ground truth as a dataset: OUT/manifest.jsonl and OUT/images/. The same seed with the "
        "same fonts writes byte-identical files."
    )
    synth.add_argument("--out", type=Path, required=True, help="dataset folder (created if missing)")
    synth.add_argument("--pages", type=positive, required=True, help="pages to write (manifest rows)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument(
        "--preset",
        choices=list(PRESETS),
        default="reader",
        help="reader: 512x512, 1-2 lines of large words (default); lines: 3-8 lines of words and numbers; "
        "document: A4 with a title, paragraphs and tables; pdf: document pages in PDFs of 2-3 pages",
    )
    synth.add_argument(
        "--degrade", type=_probability, default=0.0, metavar="P", help="chance of each degradation per page"
    )
    synth.add_argument(
        "--force", action="store_true", help="write into a non-empty --out (its other files are left as they are)"
    )
    synth.set_defaults(run=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from dsocr.data.dataset import dataset_hash
    from dsocr.data.synth import synthesize

    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file, not a folder")
    if args.out.is_dir() and any(args.out.iterdir()) and not args.force:
        raise ValueError(f"--out {args.out} is not empty; choose a new folder or pass --force to write into it")
    out = synthesize(args.out, args.pages, args.seed, preset=args.preset, degrade=args.degrade)
    print(f"wrote {args.pages} {args.preset} page(s) to {out}, dataset hash {dataset_hash(out)}")
    return 0


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a probability is from 0 to 1, got {text}")
    return value
