"""``dsocr train``: resumable, LoRA merged the same way in the run and by ``dsocr train merge``, lineage carried on."""

import json
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from dsocr.cli import main
from dsocr.contract import OcrOptions
from dsocr.data.synth import synthesize
from dsocr.model.inference import OcrModel
from dsocr.training.config import TrainConfig
from dsocr.training.output import merge_adapter
from dsocr.training.trainer import STATE_FILE, RunError, train


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    return synthesize(tmp_path_factory.mktemp("pages"), pages=3, seed=5)


def _config(tiny_checkpoint, pages, out, **overrides) -> TrainConfig:
    settings = {"model": str(tiny_checkpoint), "data": str(pages), "out": str(out), "steps": 6, "batch": 2, "lr": 1e-3}
    return TrainConfig(**{**settings, **overrides})


def _weights(directory):
    [file] = directory.glob("model-*.safetensors")
    return load_file(file)


def test_resuming_after_a_kill_ends_with_the_weights_of_an_uninterrupted_run(tiny_checkpoint, pages, tmp_path):
    common = {"full": True, "steps": 12, "save_every": 2, "save_dtype": "fp32"}
    train(_config(tiny_checkpoint, pages, tmp_path / "whole", **common), progress=False)

    killed = tmp_path / "killed"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in common.items() if k != "full"]
    command = [sys.executable, "-c", "from dsocr.cli import main; main()", "train", "--full", *flags]
    command += ["--model", str(tiny_checkpoint), "--data", str(pages), "--out", str(killed), "--batch=2", "--lr=0.001"]
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (killed / STATE_FILE).exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    run.kill()
    run.wait()
    assert (killed / STATE_FILE).exists(), "the run finished or failed before it could be killed"

    assert main(command[3:] + ["--resume"]) == 0
    whole, resumed = _weights(tmp_path / "whole"), _weights(killed)
    assert all((whole[name] == resumed[name]).all() for name in whole)


def test_a_second_run_into_an_unfinished_one_is_refused(tiny_checkpoint, pages, tmp_path):
    (tmp_path / STATE_FILE).write_bytes(b"")
    with pytest.raises(RunError, match="--resume"):
        train(_config(tiny_checkpoint, pages, tmp_path), progress=False)


def test_resuming_with_other_settings_is_refused(tiny_checkpoint, pages, tmp_path):
    config = _config(tiny_checkpoint, pages, tmp_path, steps=4, save_every=2)
    torch.save({"config": {**config.model_dump(mode="json"), "lr": 0.5}, "step": 2}, tmp_path / STATE_FILE)
    with pytest.raises(RunError, match="lr"):
        train(config, progress=False, resume=True)


def test_the_merged_lora_checkpoint_equals_dsocr_train_merge(tiny_checkpoint, pages, tmp_path):
    run = tmp_path / "run"
    train(_config(tiny_checkpoint, pages, run, lora_rank=4, save_dtype="fp32"), progress=False)
    merge_adapter(run, tmp_path / "merged")
    in_run, merged = _weights(run), _weights(tmp_path / "merged")
    assert in_run.keys() == merged.keys()
    assert all((in_run[name] == merged[name]).all() for name in in_run)


def test_lora_changes_only_the_targeted_weights(tiny_checkpoint, pages, tmp_path):
    train(_config(tiny_checkpoint, pages, tmp_path / "run", lora_rank=4, save_dtype="fp32"), progress=False)
    base, trained = _weights(tiny_checkpoint), _weights(tmp_path / "run")
    changed = {name for name in base if not (base[name].float() == trained[name]).all()}
    assert changed and all(
        name.endswith(
            (
                "q_proj.weight",
                "k_proj.weight",
                "v_proj.weight",
                "o_proj.weight",
                "gate_proj.weight",
                "up_proj.weight",
                "down_proj.weight",
            )
        )
        for name in changed
    )


def test_the_trained_checkpoint_records_its_lineage_and_dsocr_ocr_carries_it(tiny_checkpoint, pages, tmp_path):
    train(_config(tiny_checkpoint, pages, tmp_path / "run", steps=2), progress=False)
    lineage = json.loads((tmp_path / "run" / "lineage.json").read_text())
    assert lineage["base"]["model_id"] == str(tiny_checkpoint)
    assert len(lineage["data"]["sha256"]) == 64 and lineage["parameters"]["steps"] == 2

    out = tmp_path / "ocr"
    assert main(
        [
            "ocr",
            str(next((pages / "images").iterdir())),
            "--model",
            str(tmp_path / "run"),
            "--out",
            str(out),
            "--mode",
            "tiny",
            "--max-new-tokens",
            "4",
        ]
    ) in (0, 1)
    [record] = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert record["model"]["lineage"]["data_sha256"] == lineage["data"]["sha256"]


def test_the_trained_checkpoint_loads_for_inference(tiny_checkpoint, pages, tmp_path):
    train(_config(tiny_checkpoint, pages, tmp_path / "run", steps=2, lora_rank=2), progress=False)
    result = OcrModel.load(str(tmp_path / "run")).recognize(
        next((pages / "images").iterdir()), OcrOptions(mode="tiny", max_new_tokens=4)
    )
    assert result.vision_tokens > 0


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--full", "--lora-rank", "4"], "--full or --lora-rank"),
        (["--steps", "3", "--epochs", "1"], "--steps or --epochs"),
        (["--batch", "0"], "--batch"),
        (["--freeze", "everything"], "invalid choice"),
    ],
)
def test_bad_settings_get_one_clear_line(tiny_checkpoint, pages, tmp_path, capsys, flags, message):
    argv = ["train", "--model", str(tiny_checkpoint), "--data", str(pages), "--out", str(tmp_path / "o"), *flags]
    try:
        status = main(argv)
    except SystemExit as exit:  # argparse's own errors
        status = exit.code
    assert status == 2
    assert message in capsys.readouterr().err
