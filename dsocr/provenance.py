"""Which code produced a result: the installed dsocr version and the git commit of the checkout that ran."""

from __future__ import annotations

import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def git_commit() -> str | None:
    """The commit of the dsocr checkout that ran, ``+dirty`` when it had changes; None outside a checkout."""
    here = Path(__file__).parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def dsocr_version() -> str | None:
    try:
        return version("dsocr")
    except PackageNotFoundError:
        return None
