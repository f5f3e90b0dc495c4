"""The DVC pipeline (dvc.yaml, params.yaml at the repository root) run by DVC itself in temporary git repositories.

Each copy holds the repository's dvc.yaml unchanged, a smaller params.yaml (one model, 4 reader and 2 PDF pages, a
two-step reader run, so a repro takes seconds) and the source folders the stages depend on; the stages' ``dsocr`` is the installed one.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support.dvc_repo import dvc_env, git_identity, run

pytest.importorskip("dvc", reason="DVC is not installed (the eval extra)")

REPO = Path(__file__).resolve().parents[1]

#: Pages of each preset in the copies' params.yaml (the repository's sets are larger), and the reader's steps.
SMALL_PAGES = {"reader": 4, "pdf": 2}
SMALL_READER_STEPS = 2


def _source_deps(dvc_yaml: dict) -> list[str]:
    """The deps of dvc.yaml's stages that are repository files: not templated, and not under another stage's
    outputs (the checkout holds the committed results, which the copy must make itself)."""
    stages = [stage.get("do", stage) for stage in dvc_yaml["stages"].values()]
    outputs = {
        (next(iter(out)) if isinstance(out, dict) else out).split("${")[0].split("/")[0]
        for stage in stages
        for kind in ("outs", "metrics", "plots")
        for out in stage.get(kind, [])
    }
    deps = set()
    for stage in stages:
        for dep in stage.get("deps", []):
            if "${" not in dep and dep.split("/")[0] not in outputs and (REPO / dep).exists():
                deps.add(dep)
    return sorted(deps)


def _small_params(params: dict) -> dict:
    params = json.loads(json.dumps(params))
    for dataset in params["datasets"].values():
        dataset["pages"] = SMALL_PAGES[dataset["preset"]]
    first = params["eval"]["models"][0]
    params["models"] = {first: params["models"][first]}
    params["eval"]["models"] = [first]
    assert params["reader"]["base"] == first, "the reader starts from the model the copies keep"
    params["reader"]["steps"] = SMALL_READER_STEPS
    return params


@dataclass(frozen=True)
class Copy:
    root: Path
    env: dict[str, str]

    def dvc(self, *args: str) -> str:
        return run(["dvc", *args], self.root, self.env)

    def git(self, *args: str) -> str:
        return run(["git", *args], self.root, self.env)

    def params(self) -> dict:
        return yaml.safe_load((self.root / "params.yaml").read_text())

    def metrics_files(self) -> dict[str, bytes]:
        return {
            str(path.relative_to(self.root)): path.read_bytes()
            for path in sorted((self.root / "results" / "eval").glob("*/*/metrics.json"))
        }


def _fresh_copy(root: Path) -> Copy:
    """A git repository with dvc.yaml, the small params.yaml and the stages' source deps, committed after ``dvc init``."""
    root.mkdir(parents=True)
    env = dvc_env(root.parent / f"{root.name}-dvc-site-cache")
    shutil.copy2(REPO / "dvc.yaml", root / "dvc.yaml")
    params = _small_params(yaml.safe_load((REPO / "params.yaml").read_text()))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for dep in _source_deps(yaml.safe_load((REPO / "dvc.yaml").read_text())):
        source, target = REPO / dep, root / dep
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
    run(["git", "init", "-q"], root, env)
    git_identity(root, env)
    run(["dvc", "init", "-q"], root, env)
    if (REPO / ".dvcignore").is_file():
        shutil.copy2(REPO / ".dvcignore", root / ".dvcignore")
    copy = Copy(root, env)
    copy.git("add", "-A")
    copy.git("commit", "-q", "-m", "pipeline")
    return copy


def _clone(origin: Copy, root: Path) -> Copy:
    """A git clone of ``origin`` sharing its DVC cache, its outputs checked out: a workspace a test may change."""
    env = dvc_env(root.parent / f"{root.name}-dvc-site-cache")
    run(["git", "clone", "-q", str(origin.root), str(root)], root.parent, env)
    git_identity(root, env)
    copy = Copy(root, env)
    copy.dvc("cache", "dir", "--local", str(origin.root / ".dvc" / "cache"))
    copy.dvc("checkout")
    return copy


@dataclass(frozen=True)
class Reproduced:
    copy: Copy
    log: str  # the first `dvc repro`'s output


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory) -> Reproduced:
    """One fresh copy after its first ``dvc repro``, everything (dvc.lock, metrics, .gitignores) committed."""
    copy = _fresh_copy(tmp_path_factory.mktemp("pipeline") / "repo")
    log = copy.dvc("repro")
    copy.git("add", "-A")
    copy.git("commit", "-q", "-m", "dvc repro")
    return Reproduced(copy, log)


def _outputs(root: Path) -> dict[str, int]:
    """mtime (ns) of every file under the pipeline's output folders."""
    return {
        str(path.relative_to(root)): path.stat().st_mtime_ns
        for folder in ("data", "models", "results")
        for path in sorted((root / folder).rglob("*"))
        if path.is_file()
    }


@pytest.mark.slow
def test_repro_on_a_fresh_copy_writes_every_stage_outputs(reproduced):
    root, params = reproduced.copy.root, reproduced.copy.params()
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    pairs = [(model, data) for model in params["eval"]["models"] for data in params["eval"]["datasets"]]
    assert set(lock) == {
        *(f"data@{name}" for name in params["datasets"]),
        *(f"model@{name}" for name in params["models"]),
        *(f"eval@{model}-{data}" for model, data in pairs),
        "reader",
        "report",
    }
    for name, dataset in params["datasets"].items():
        manifest = root / "data" / "eval" / name / "manifest.jsonl"
        assert len(manifest.read_text().splitlines()) == dataset["pages"]
    for name in params["models"]:
        assert (root / "models" / name / "config.json").is_file()
    lineage = json.loads((root / "models" / "tiny-reader" / "lineage.json").read_text())
    assert lineage["steps"] == SMALL_READER_STEPS and lineage["data"]["path"] == "data/eval/reader-train"
    report = (root / "results" / "report.md").read_text()
    for model, data in pairs:
        result = root / "results" / "eval" / model / data
        metrics = json.loads((result / "metrics.json").read_text())
        assert metrics["pages"] == params["datasets"][data]["pages"]
        assert metrics["dataset"]["name"] == data and metrics["engine"]["id"] == f"models/{model}"
        assert metrics["options"]["mode"] == params["eval"]["mode"]
        assert len((result / "pages.jsonl").read_text().splitlines()) == metrics["pages"]
        assert (result / "timings.json").is_file()
        for plot in ("cer_histogram", "cer_vs_compression"):
            assert (result / "plots" / f"{plot}.png").stat().st_size > 0
            assert (result / "plots" / f"{plot}.csv").stat().st_size > 0
        assert any(f"| models/{model} |" in row and f"| {data} (" in row for row in report.splitlines())
    assert len(report.splitlines()) == 2 + len(pairs)


@pytest.mark.slow
def test_a_second_repro_runs_nothing(reproduced):
    copy = reproduced.copy
    before = _outputs(copy.root)
    assert any(path.endswith("metrics.json") for path in before)
    log = copy.dvc("repro")
    assert "Running stage" not in log
    assert "Data and pipelines are up to date." in log
    lock = yaml.safe_load((copy.root / "dvc.lock").read_text())["stages"]
    assert all(f"Stage '{stage}' didn't change, skipping" in log for stage in lock)
    assert _outputs(copy.root) == before
    assert copy.git("status", "--porcelain") == ""


@pytest.mark.slow
def test_two_fresh_copies_write_byte_identical_metrics(reproduced, tmp_path):
    other = _fresh_copy(tmp_path / "other")
    other.dvc("repro")
    first, second = reproduced.copy.metrics_files(), other.metrics_files()
    assert len(first) == len(reproduced.copy.params()["eval"]["datasets"])
    assert second.keys() == first.keys()
    for path in first:
        assert second[path] == first[path], path


@pytest.mark.slow
def test_a_bytecode_cache_in_a_source_folder_leaves_the_stages_unchanged(reproduced, tmp_path):
    # Python writes __pycache__/ next to the modules it imports; those bytes differ by checkout and interpreter.
    copy = _clone(reproduced.copy, tmp_path / "clone")
    for dep in _source_deps(yaml.safe_load((copy.root / "dvc.yaml").read_text())):
        folder = copy.root / dep if (copy.root / dep).is_dir() else (copy.root / dep).parent
        (folder / "__pycache__").mkdir(exist_ok=True)
        (folder / "__pycache__" / "module.cpython-311.pyc").write_bytes(os.urandom(64))
    assert "Data and pipelines are up to date." in copy.dvc("status")


@pytest.mark.slow
def test_metrics_diff_shows_the_figures_a_changed_param_moves(reproduced, tmp_path):
    copy = _clone(reproduced.copy, tmp_path / "clone")
    params = copy.params()
    old_tokens = params["eval"]["max_new_tokens"]
    new_tokens = 8
    assert new_tokens < old_tokens
    params["eval"]["max_new_tokens"] = new_tokens
    (copy.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = copy.dvc("repro")
    assert "Running stage 'eval@" in log and "Running stage 'data@" not in log
    diff = json.loads(copy.dvc("metrics", "diff", "--json"))
    files = sorted(copy.metrics_files())
    assert sorted(diff) == files
    for path in files:
        assert diff[path]["options.max_new_tokens"] == {
            "old": old_tokens,
            "new": new_tokens,
            "diff": new_tokens - old_tokens,
        }
        tokens = diff[path]["generated_tokens"]
        assert tokens["old"] > new_tokens >= tokens["new"] and tokens["diff"] < 0


@pytest.mark.slow
def test_exp_run_with_a_set_param_is_listed_by_exp_show(reproduced, tmp_path):
    copy = _clone(reproduced.copy, tmp_path / "clone")
    baseline_mode = copy.params()["eval"]["mode"]
    assert baseline_mode != "base"
    log = copy.dvc("exp", "run", "-S", "eval.mode=base")
    assert "Ran experiment(s)" in log
    head = copy.git("rev-parse", "HEAD").strip()
    rows = json.loads(copy.dvc("exp", "show", "--json"))
    baseline = next(row for row in rows if row["rev"] == head)
    assert baseline["data"]["params"]["params.yaml"]["data"]["eval"]["mode"] == baseline_mode
    experiments = [rev for experiment in baseline["experiments"] or [] for rev in experiment["revs"]]
    assert len(experiments) == 1
    data = experiments[0]["data"]
    assert data["params"]["params.yaml"]["data"]["eval"]["mode"] == "base"
    metrics = data["metrics"]
    assert sorted(metrics) == sorted(copy.metrics_files())
    assert all(entry["data"]["options"]["mode"] == "base" for entry in metrics.values())
