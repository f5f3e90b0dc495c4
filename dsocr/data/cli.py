"""``dsocr data``: make datasets."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dsocr.arguments import positive


def add_data(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    synth = commands.add_parser("synth", help="synthetic pages with exact ground truth")
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--pages", type=positive, required=True)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--preset", default="reader", help="reader (default: 1-2 large lines, Tiny mode) or lines")
    synth.add_argument("--degrade", type=float, default=0.0, help="probability of each degradation per page")
    synth.set_defaults(run=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from dsocr.data.dataset import dataset_hash
    from dsocr.data.synth import synthesize

    if args.out.exists() and any(args.out.iterdir()):
        raise ValueError(f"{args.out} exists and is not empty")
    if not 0 <= args.degrade <= 1:
        raise ValueError(f"--degrade must be between 0 and 1, got {args.degrade}")
    synthesize(args.out, args.pages, args.seed, args.preset, args.degrade)
    print(f"dsocr: {args.pages} pages -> {args.out} (sha256 {dataset_hash(args.out)})", file=sys.stderr)
    return 0
