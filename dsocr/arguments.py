"""Argument types of the ``dsocr`` commands: each checks one kind of value and says what it expected."""

from __future__ import annotations

import argparse
import sys
from typing import Literal, get_args, get_origin

from dsocr.contract import OcrOptions
from dsocr.documents.admission import parse_page_ranges
from dsocr.documents.errors import DocumentError


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"not a TCP port: {value}")
    return value


def override(text: str) -> tuple[str, str, str]:
    target, sep, value = text.partition("=")
    model, dot, key = target.partition(".")
    if not (sep and dot and model and key):
        raise argparse.ArgumentTypeError(f"expected MODEL.KEY=VALUE, got {text!r}")
    return model, key, value


def page_ranges(text: str) -> str:
    """Check the syntax now; whether the pages exist is checked per document."""
    try:
        parse_page_ranges(text, page_count=sys.maxsize)
    except DocumentError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def parameter_overrides(overrides: list[tuple[str, str, str]]) -> dict[str, dict[str, str]]:
    """``--set MODEL.KEY=VALUE`` options as ``{model: {key: value}}``."""
    parameters: dict[str, dict[str, str]] = {}
    for model, key, value in overrides:
        parameters.setdefault(model, {})[key] = value
    return parameters


def add_option_flags(parser: argparse.ArgumentParser, **defaults) -> None:
    """A flag for every ``OcrOptions`` field (``--max-new-tokens``, ``--retry/--no-retry``, ...), with the
    contract's default unless ``defaults`` gives another; ``options_from_arguments`` validates them."""
    for name, field in OcrOptions.model_fields.items():
        flag = "--" + name.replace("_", "-")
        settings = {"dest": name, "default": defaults.get(name, field.default), "help": field.description}
        if field.annotation is bool:
            settings["action"] = argparse.BooleanOptionalAction
        elif get_origin(field.annotation) is Literal:
            settings["choices"] = get_args(field.annotation)
        elif field.annotation is int:
            settings["type"] = int
        parser.add_argument(flag, **settings)


def options_from_arguments(args: argparse.Namespace) -> OcrOptions:
    """The options the flags of ``add_option_flags`` give; ``InvalidOptions`` (a ValueError) if they do not fit."""
    return OcrOptions.checked(**{name: getattr(args, name) for name in OcrOptions.model_fields})
