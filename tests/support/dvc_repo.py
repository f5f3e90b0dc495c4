"""Running git and DVC in a temporary repository: the environment, a checked command, a test identity."""

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def dvc_env(site_cache: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The venv's commands first (the stages call ``dsocr``), no analytics, DVC's site cache in ``site_cache``."""
    env = {**os.environ, **(extra or {})}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env["DVC_SITE_CACHE_DIR"] = str(site_cache)
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    return env


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def git_identity(repo: Path, env: dict[str, str]) -> None:
    """Commits in ``repo`` work on a machine with no git identity configured (CI)."""
    for key, value in (
        ("user.name", "dsocr tests"),
        ("user.email", "tests@dsocr.invalid"),
        ("commit.gpgsign", "false"),
    ):
        run(["git", "config", key, value], repo, env)
