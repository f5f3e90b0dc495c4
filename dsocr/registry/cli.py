"""``dsocr registry``: register checkpoints as MLflow model versions, promote one past the accuracy gate, list them."""

from __future__ import annotations

import argparse
from pathlib import Path

from dsocr.arguments import add_option_flags, options_from_arguments


def add_registry(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "The model registry on MLflow (--mlflow URI, else MLFLOW_TRACKING_URI, else a SQLite store in the user's "
        "state directory). `dsocr ocr --model`, `dsocr eval --model` and `dsocr serve --model` take "
        "models:/NAME@ALIAS or models:/NAME/VERSION."
    )
    commands = parser.add_subparsers(dest="registry_command", required=True, metavar="COMMAND")
    register = commands.add_parser("register", help="register a checkpoint as a new version of a model")
    register.add_argument("--name", required=True, help="the registered model's name")
    register.add_argument("--model", required=True, help="checkpoint directory, or a hub id pinned as ID@REVISION")
    register.add_argument("--description", default=None)
    register.add_argument(
        "--exports",
        nargs="+",
        type=Path,
        default=[],
        metavar="DIR",
        help="encoder exports of this checkpoint (`dsocr export onnx|tensorrt` folders), stored with their hashes",
    )
    _add_uri(register)
    register.set_defaults(run=_run_register)

    promote = commands.add_parser(
        "promote", help="move an alias to a version if it is not worse than the alias's holder on a golden set"
    )
    promote.description = (
        "Evaluate the candidate version and the current holder of --alias on --data (or reuse their logged "
        "evaluations on the same dataset hash, weights and options), and move the alias only if mean CER and mean "
        "normalized edit distance are not worse by more than --max-regression and the loop rate did not rise. "
        "Exit status 0: promoted; 1: refused (both figures printed; the alias is unchanged)."
    )
    promote.add_argument("name", help="the registered model")
    promote.add_argument("--version", required=True, help="the candidate version")
    promote.add_argument("--alias", default="champion")
    promote.add_argument("--data", type=Path, required=True, help="the golden dataset folder")
    promote.add_argument("--max-regression", type=_fraction, default=0.005, help="tolerated rise of CER and NED")
    promote.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    add_option_flags(promote)
    _add_uri(promote)
    promote.set_defaults(run=_run_promote)

    show = commands.add_parser("show", help="list a model's versions, their aliases and digests")
    show.add_argument("name")
    _add_uri(show)
    show.set_defaults(run=_run_show)


def _add_uri(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mlflow", default=None, metavar="URI", help="MLflow tracking URI")


def _tracked(run):
    """A command whose MLflow failures exit 2 with one line (``TrackingError`` is a ValueError ``main`` reports)."""

    def run_tracked(args: argparse.Namespace) -> int:
        from dsocr.tracking import mlflow_errors

        with mlflow_errors():
            return run(args)

    return run_tracked


@_tracked
def _run_register(args: argparse.Namespace) -> int:
    from dsocr.registry.registry import register

    version = register(args.mlflow, args.name, args.model, args.description, args.exports)
    print(
        f"registered {args.model} as {version.name} version {version.version} (models:/{version.name}/{version.version})"
    )
    return 0


@_tracked
def _run_promote(args: argparse.Namespace) -> int:
    from dsocr.data.dataset import Dataset
    from dsocr.registry.gate import promote
    from dsocr.registry.registry import get_version

    options = options_from_arguments(args)
    dataset = Dataset.load(args.data)
    candidate = get_version(args.mlflow, args.name, version=args.version)
    decision = promote(args.mlflow, candidate, args.alias, dataset, options, args.max_regression, args.progress)
    print(decision.candidate.line("candidate"))
    if decision.champion is not None:
        print(decision.champion.line(f"@{args.alias}"))
    if decision.promoted:
        print(f"promoted: {args.name} v{candidate.version} is now @{args.alias}")
        return 0
    print(f"refused: {'; '.join(decision.reasons)}; @{args.alias} stays v{decision.champion.version.version}")
    return 1


@_tracked
def _run_show(args: argparse.Namespace) -> int:
    from dsocr.registry.registry import list_versions

    for version, aliases in list_versions(args.mlflow, args.name):
        labels = " ".join(f"@{alias}" for alias in aliases)
        print(f"{version.name} v{version.version} {labels}".rstrip() + f"  {version.source}")
    return 0


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a CER/NED difference is from 0 to 1, got {text}")
    return value
