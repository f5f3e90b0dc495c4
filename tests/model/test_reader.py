"""The tiny reader shipped with dsocr: the recipe of params.yaml trained it, and it reads its training pages."""

import json
import statistics
from pathlib import Path

import pytest
import yaml

from dsocr.cli import main
from dsocr.contract import OcrOptions
from dsocr.data.dataset import Dataset, dataset_hash
from dsocr.data.synth import synthesize
from dsocr.evaluation.metrics import character_error_rate
from dsocr.model.inference import OcrModel
from dsocr.model.reader import DEMO_PAGE, SUMMARY, describe_reader

REPO = Path(__file__).resolve().parents[2]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture(scope="module")
def reader(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("reader") / "checkpoint"
    assert main(["checkpoint", "reader", str(directory)]) == 0
    return directory


@pytest.fixture(scope="module")
def lineage(reader) -> dict:
    return json.loads((reader / "lineage.json").read_text())


@pytest.fixture(scope="module")
def training_pages(tmp_path_factory) -> Path:
    spec = PARAMS["datasets"]["reader-train"]
    return synthesize(tmp_path_factory.mktemp("reader-train"), spec["pages"], spec["seed"], spec["preset"])


def test_it_was_trained_with_the_recipe_in_params_yaml(lineage):
    recipe = PARAMS["reader"]
    trained = lineage["parameters"]
    assert lineage["steps"] == recipe["steps"]
    assert {key: trained[key] for key in ("batch", "lr", "warmup_steps", "min_lr_ratio", "seed")} == {
        key: recipe[key] for key in ("batch", "lr", "warmup_steps", "min_lr_ratio", "seed")
    }
    assert trained["full"] and trained["model"] == f"models/{recipe['base']}"


def test_its_training_pages_are_the_ones_the_code_writes_today(lineage, training_pages):
    assert lineage["data"]["sha256"] == dataset_hash(training_pages)


def test_it_reads_its_training_pages_to_a_cer_of_at_most_5_percent(reader, lineage, training_pages):
    model, dataset = OcrModel.load(str(reader)), Dataset.load(training_pages)
    trained = lineage["parameters"]
    options = OcrOptions(mode=trained["mode"], prompt=trained["prompt"], max_new_tokens=64)
    errors = [
        character_error_rate(model.recognize(dataset.open_page(i), options).text, entry.ground_truth)
        for i, entry in enumerate(dataset.entries)
    ]
    assert statistics.fmean(errors) <= 0.05, errors


def test_its_summary_holds_what_the_pipeline_measured():
    summary = json.loads(SUMMARY.read_text())
    for key, dataset in (("training", "reader-train"), ("held_out", "synth-reader")):
        metrics = json.loads((REPO / "results" / "eval" / "tiny-reader" / dataset / "metrics.json").read_text())
        assert summary[key]["cer_mean"] == metrics["cer"]["mean"]
        assert summary[key]["pages"] == metrics["pages"] == PARAMS["datasets"][dataset]["pages"]
    assert f"CER {summary['training']['cer_mean']:.3f} on those pages" in describe_reader()


def test_the_demo_page_is_page_one_of_its_training_set(training_pages):
    dataset = Dataset.load(training_pages)
    assert DEMO_PAGE.read_bytes() == (dataset.root / dataset.entries[0].source).read_bytes()
