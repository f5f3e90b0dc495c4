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
    _add_out(synth)
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
    synth.set_defaults(run=_run_synth)

    omnidocbench = commands.add_parser(
        "import-omnidocbench", help="import OmniDocBench pages (its JSON file and images) with their ground truth"
    )
    omnidocbench.description = (
        "Import the pages of OmniDocBench's JSON annotation file as a dataset: OUT/manifest.jsonl and the page "
        "images copied into OUT/images/. The ground truth is DeepSeek-OCR-style Markdown of the blocks in reading "
        "order, without headers, footers, page numbers, page footnotes, abandoned and ignored blocks; page "
        "attributes become tags."
    )
    omnidocbench.add_argument("annotations", type=Path, metavar="FILE.json", help="OmniDocBench's JSON file")
    omnidocbench.add_argument("images", type=Path, metavar="IMAGES_DIR", help="the folder of its page images")
    _add_out(omnidocbench)
    omnidocbench.set_defaults(run=_run_import_omnidocbench)

    pdfs = commands.add_parser("import-pdfs", help="import born-digital PDFs, their text layer as pseudo ground truth")
    pdfs.description = (
        "Import every page of born-digital PDFs as a dataset: OUT/manifest.jsonl and the PDFs copied into "
        "OUT/pdfs/. The ground truth is the page's text layer, not Markdown, so each entry is tagged "
        "ground_truth=text-layer. Pages without text (scans) and unreadable PDFs are skipped with a warning."
    )
    pdfs.add_argument("inputs", type=Path, nargs="+", metavar="PDF_OR_DIR", help="PDF files, or folders of *.pdf")
    _add_out(pdfs)
    pdfs.set_defaults(run=_run_import_pdfs)


def _add_out(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="dataset folder (created if missing)")
    parser.add_argument(
        "--force", action="store_true", help="write into a non-empty --out (its other files are left as they are)"
    )


def _check_out(args: argparse.Namespace) -> None:
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file, not a folder")
    if args.out.is_dir() and any(args.out.iterdir()) and not args.force:
        raise ValueError(f"--out {args.out} is not empty; choose a new folder or pass --force to write into it")


def _run_synth(args: argparse.Namespace) -> int:
    from dsocr.data.dataset import dataset_hash
    from dsocr.data.synth import synthesize

    _check_out(args)
    out = synthesize(args.out, args.pages, args.seed, preset=args.preset, degrade=args.degrade)
    print(f"wrote {args.pages} {args.preset} page(s) to {out}, dataset hash {dataset_hash(out)}")
    return 0


def _run_import_omnidocbench(args: argparse.Namespace) -> int:
    from dsocr.data.dataset import dataset_hash
    from dsocr.data.omnidocbench import import_omnidocbench

    _check_out(args)
    entries = import_omnidocbench(args.annotations, args.images, args.out)
    print(f"imported {len(entries)} OmniDocBench page(s) to {args.out}, dataset hash {dataset_hash(args.out)}")
    return 0


def _run_import_pdfs(args: argparse.Namespace) -> int:
    from dsocr.data.dataset import dataset_hash
    from dsocr.data.pdfs import import_pdfs

    _check_out(args)
    done = import_pdfs(args.inputs, args.out)
    print(
        f"imported {done.pages} page(s) of {done.pdfs} PDF(s) to {done.out} (skipped: {done.pages_without_text} "
        f"page(s) without text, {done.unreadable_pdfs} unreadable PDF(s)), dataset hash {dataset_hash(done.out)}"
    )
    return 0


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a probability is from 0 to 1, got {text}")
    return value
