"""The Triton model repository: the checked-in templates are wired right, the checks catch miswiring, and
``materialize`` fills in the checkpoint and overrides."""

import shutil
from pathlib import Path

import pytest

from dsocr.contract import VIEW_SIZES
from dsocr.model.source import CheckpointError
from dsocr.triton.artifacts import read_metadata
from dsocr.triton.repository import (
    GENERATED_MARK,
    TEMPLATE,
    VIEW_TEMPLATE,
    RepositoryError,
    ViewEncoders,
    check_repository,
    config_files,
    materialize,
    read_config,
)


@pytest.fixture(scope="module")
def tiny_encoders(tiny_onnx_exports) -> ViewEncoders:
    return ViewEncoders("cpu", {read_metadata(folder, "onnx")["view"]: [folder] for folder in tiny_onnx_exports})


def _edited_template(tmp_path: Path, file: str, old: str, new: str) -> Path:
    """A copy of the templates with one edit in ``file``; the edit must apply, so a template change shows up here."""
    repository = tmp_path / "repository"
    shutil.copytree(TEMPLATE, repository, ignore=shutil.ignore_patterns("__pycache__"))
    path = repository / file
    text = path.read_text()
    assert old in text, f"{file} no longer contains {old!r}"
    path.write_text(text.replace(old, new))
    return repository


def _problems(repository: Path, config_name: str = "cpu") -> list[str]:
    with pytest.raises(RepositoryError) as raised:
        check_repository(repository, config_name)
    return raised.value.problems


def _all_config_files(repository: Path) -> list[Path]:
    return [file for model in sorted(repository.iterdir()) if model.is_dir() for file in config_files(model)]


@pytest.mark.parametrize("config_name", ["cpu", "gpu"])
def test_checked_in_templates_pass_the_checks(config_name):
    check_repository(TEMPLATE, config_name)


def test_every_checked_in_config_parses():
    files = _all_config_files(TEMPLATE)
    assert len(files) == 7
    for file in files:
        assert read_config(file).name == file.relative_to(TEMPLATE).parts[0]


def test_a_config_that_does_not_parse_is_reported(tmp_path):
    repository = _edited_template(tmp_path, "preprocess/config.pbtxt", "max_batch_size: 16", "max_batch: 16")
    [problem] = _problems(repository)
    assert problem.startswith("preprocess/config.pbtxt:") and "max_batch" in problem


def test_an_ensemble_tensor_renamed_on_one_side_is_reported(tmp_path):
    repository = _edited_template(
        tmp_path,
        "deepseek_ocr/config.pbtxt",
        'output_map { key: "IMAGE_EMBEDS", value: "image_embeds" }',
        'output_map { key: "IMAGE_EMBEDS", value: "image_embeddings" }',
    )
    assert _problems(repository) == [
        "deepseek_ocr step 3 (decode): consumes 'image_embeds', which is neither an ensemble input nor an earlier "
        "step's output"
    ]


def test_a_data_type_mismatch_between_steps_is_reported(tmp_path):
    repository = _edited_template(
        tmp_path,
        "encode/config.pbtxt",
        '{ name: "IMAGE_EMBEDS", data_type: TYPE_FP32',
        '{ name: "IMAGE_EMBEDS", data_type: TYPE_FP16',
    )
    assert _problems(repository) == [
        "deepseek_ocr step 3 (decode) input IMAGE_EMBEDS ('image_embeds'): expects TYPE_FP32, "
        "deepseek_ocr step 2 (encode) gives TYPE_FP16"
    ]


def test_a_shape_mismatch_between_steps_is_reported(tmp_path):
    repository = _edited_template(
        tmp_path,
        "encode/config.pbtxt",
        '{ name: "GRID", data_type: TYPE_INT32, dims: [ 2 ] }',
        '{ name: "GRID", data_type: TYPE_INT32, dims: [ 3 ] }',
    )
    assert _problems(repository) == [
        "deepseek_ocr step 2 (encode) input GRID ('grid'): expects dims [3], deepseek_ocr step 1 (preprocess) gives [2]"
    ]


def test_an_ensemble_input_of_the_wrong_type_is_reported(tmp_path):
    repository = _edited_template(
        tmp_path,
        "deepseek_ocr/config.pbtxt",
        '{ name: "MAX_TILES", data_type: TYPE_INT32',
        '{ name: "MAX_TILES", data_type: TYPE_INT64',
    )
    assert _problems(repository) == [
        "deepseek_ocr step 1 (preprocess) input MAX_TILES ('MAX_TILES'): expects TYPE_INT32, ensemble input gives "
        "TYPE_INT64"
    ]


def test_a_step_mapping_a_tensor_the_model_does_not_have_is_reported(tmp_path):
    repository = _edited_template(tmp_path, "preprocess/config.pbtxt", '{ name: "MAX_TILES"', '{ name: "TILE_LIMIT"')
    assert _problems(repository) == [
        "deepseek_ocr step 1 (preprocess): input_map key 'MAX_TILES' is not an input of preprocess",
        "deepseek_ocr step 1 (preprocess): required inputs TILE_LIMIT are not in input_map",
    ]


def test_an_ensemble_output_no_step_produces_is_reported(tmp_path):
    repository = _edited_template(
        tmp_path, "deepseek_ocr/config.pbtxt", 'output_map { key: "PROMPT_TOKENS", value: "PROMPT_TOKENS" }', ""
    )
    assert _problems(repository) == ["deepseek_ocr: no step produces the ensemble output 'PROMPT_TOKENS'"]


def test_a_step_model_that_is_not_in_the_repository_is_reported(tmp_path):
    repository = _edited_template(
        tmp_path, "deepseek_ocr/config.pbtxt", 'model_name: "encode"', 'model_name: "encoder"'
    )
    problems = _problems(repository)
    assert problems[0] == "deepseek_ocr step 2 (encoder): no model 'encoder' in the repository"


def test_an_ensemble_batching_more_than_a_step_model_is_reported(tmp_path):
    repository = _edited_template(tmp_path, "deepseek_ocr/config.pbtxt", "max_batch_size: 1 ", "max_batch_size: 32 ")
    assert _problems(repository) == [
        "deepseek_ocr step 1 (preprocess): max_batch_size 16 is below the ensemble's 32",
        "deepseek_ocr step 2 (encode): max_batch_size 16 is below the ensemble's 32",
        "deepseek_ocr step 3 (decode): max_batch_size 16 is below the ensemble's 32",
    ]


def test_dynamic_batching_without_a_bounded_queue_is_reported(tmp_path):
    repository = _edited_template(
        tmp_path,
        "encode/config.pbtxt",
        "default_queue_policy { max_queue_size: 256, timeout_action: REJECT, default_timeout_microseconds: 120000000 }",
        "",
    )
    [problem] = _problems(repository)
    assert problem.startswith("encode: dynamic_batching has an unbounded queue")


def test_the_decode_engine_queue_must_be_bounded(tmp_path):
    repository = _edited_template(
        tmp_path,
        "decode/configs/cpu.pbtxt",
        'key: "max_waiting_pages", value: { string_value: "256" }',
        'key: "max_waiting_pages", value: { string_value: "0" }',
    )
    [problem] = _problems(repository)
    assert problem.startswith("decode: dynamic_batching has an unbounded queue")


def test_decode_must_be_decoupled(tmp_path):
    repository = _edited_template(
        tmp_path, "decode/configs/cpu.pbtxt", "model_transaction_policy { decoupled: true }", ""
    )
    assert "decode: must be decoupled (model_transaction_policy { decoupled: true })" in _problems(repository)


def test_a_python_model_without_its_model_file_is_reported(tmp_path):
    repository = _edited_template(tmp_path, "encode/config.pbtxt", "", "")
    (repository / "encode" / "1" / "model.py").unlink()
    assert _problems(repository) == ["encode: 1/model.py is missing"]


def test_only_the_variant_config_triton_would_load_is_checked(tmp_path):
    repository = _edited_template(
        tmp_path,
        "decode/configs/gpu.pbtxt",
        '{ name: "IMAGE_EMBEDS", data_type: TYPE_FP32',
        '{ name: "IMAGE_EMBEDS", data_type: TYPE_FP16',
    )
    check_repository(repository, "cpu")
    assert _problems(repository, "gpu") == [
        "deepseek_ocr step 3 (decode) input IMAGE_EMBEDS ('image_embeds'): expects TYPE_FP16, "
        "deepseek_ocr step 2 (encode) gives TYPE_FP32"
    ]


def test_a_variant_missing_falls_back_to_config_pbtxt(tmp_path):
    repository = _edited_template(tmp_path, "preprocess/config.pbtxt", "", "")
    assert not (repository / "preprocess" / "configs").exists()
    check_repository(repository, "gpu")


def test_materialize_sets_checkpoint_and_lineage_in_every_config_file(tiny_encoders, tiny_checkpoint, tmp_path):
    repository = materialize(tmp_path / "repository", str(tiny_checkpoint), tiny_encoders)
    files = _all_config_files(repository)
    view_models = {f"encoder_{view}" for view in VIEW_SIZES}
    assert [f.relative_to(repository) for f in files if f.relative_to(repository).parts[0] not in view_models] == [
        f.relative_to(TEMPLATE)
        for f in _all_config_files(TEMPLATE)
        if f.relative_to(TEMPLATE).parts[0] != VIEW_TEMPLATE
    ]
    for file in files:
        parameters = {key: value.string_value for key, value in read_config(file).parameters.items()}
        if file.relative_to(repository).parts[0] not in view_models:  # those read their files, not the checkpoint
            assert parameters["checkpoint"] == str(tiny_checkpoint.resolve())
        assert parameters["model_id"] == str(tiny_checkpoint.resolve())
        assert parameters["revision"] == ""
        assert parameters["lineage"] == ""  # filled in only for a checkpoint dsocr train wrote
        assert file.read_text().startswith(GENERATED_MARK)


def test_materialize_keeps_every_other_setting_of_the_template(tiny_encoders, tiny_checkpoint, tmp_path):
    repository = materialize(tmp_path / "repository", str(tiny_checkpoint), tiny_encoders)
    for template_file in _all_config_files(TEMPLATE):
        if template_file.relative_to(TEMPLATE).parts[0] == VIEW_TEMPLATE:
            continue
        written, template = read_config(repository / template_file.relative_to(TEMPLATE)), read_config(template_file)
        for key in ("checkpoint", "model_id", "revision", "lineage", "view_dtype", "view_max_batch_size"):
            written.parameters.pop(key, None)
            template.parameters.pop(key, None)
        assert written == template


def test_materialize_copies_the_model_code_but_not_bytecode_caches(tiny_encoders, tiny_checkpoint, tmp_path):
    template = _edited_template(tmp_path, "preprocess/config.pbtxt", "", "")
    (template / "decode" / "1" / "__pycache__").mkdir()
    repository = materialize(tmp_path / "out", str(tiny_checkpoint), tiny_encoders, template=template)
    assert (repository / "decode" / "1" / "model.py").read_bytes() == (
        template / "decode" / "1" / "model.py"
    ).read_bytes()
    assert not (repository / "decode" / "1" / "__pycache__").exists()


def test_materialize_applies_overrides_to_every_variant_of_the_model(tiny_encoders, tiny_checkpoint, tmp_path):
    repository = materialize(
        tmp_path / "repository", str(tiny_checkpoint), tiny_encoders, parameters={"decode": {"max_running_pages": "4"}}
    )
    for variant in ("cpu", "gpu"):
        config = read_config(repository / "decode" / "configs" / f"{variant}.pbtxt")
        assert config.parameters["max_running_pages"].string_value == "4"
    encode = read_config(repository / "encode" / "config.pbtxt")
    assert "max_running_pages" not in encode.parameters


def test_materialize_accepts_lineage_overrides_for_a_checkpoint_copied_from_the_hub(
    tiny_encoders, tiny_checkpoint, tmp_path
):
    repository = materialize(
        tmp_path / "repository",
        str(tiny_checkpoint),
        tiny_encoders,
        parameters={"decode": {"model_id": "deepseek-ai/DeepSeek-OCR", "revision": "abc123"}},
    )
    parameters = read_config(repository / "decode" / "configs" / "cpu.pbtxt").parameters
    assert (parameters["model_id"].string_value, parameters["revision"].string_value) == (
        "deepseek-ai/DeepSeek-OCR",
        "abc123",
    )


def test_materialize_rejects_an_unknown_parameter_key(tiny_encoders, tiny_checkpoint, tmp_path):
    with pytest.raises(ValueError, match=r"unknown parameter decode\.max_runing_pages; decode has .*max_running_pages"):
        materialize(
            tmp_path / "repository",
            str(tiny_checkpoint),
            tiny_encoders,
            parameters={"decode": {"max_runing_pages": "4"}},
        )
    assert not (tmp_path / "repository").exists()


def test_materialize_rejects_a_key_another_model_has(tiny_encoders, tiny_checkpoint, tmp_path):
    with pytest.raises(ValueError, match=r"unknown parameter preprocess\.max_running_pages"):
        materialize(
            tmp_path / "repository",
            str(tiny_checkpoint),
            tiny_encoders,
            parameters={"preprocess": {"max_running_pages": "4"}},
        )


def test_materialize_rejects_an_unknown_model(tiny_encoders, tiny_checkpoint, tmp_path):
    with pytest.raises(ValueError, match=r"unknown model 'decoder'"):
        materialize(
            tmp_path / "repository",
            str(tiny_checkpoint),
            tiny_encoders,
            parameters={"decoder": {"max_running_pages": "4"}},
        )


def test_materialize_rejects_overriding_the_checkpoint(tiny_encoders, tiny_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="cannot be overridden"):
        materialize(
            tmp_path / "repository",
            str(tiny_checkpoint),
            tiny_encoders,
            parameters={"encode": {"checkpoint": "/elsewhere"}},
        )


def test_materialize_refuses_a_folder_holding_something_else(tiny_encoders, tiny_checkpoint, tmp_path):
    (tmp_path / "repository").mkdir()
    (tmp_path / "repository" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a repository written by dsocr"):
        materialize(tmp_path / "repository", str(tiny_checkpoint), tiny_encoders)
    assert [p.name for p in (tmp_path / "repository").iterdir()] == ["notes.txt"]


def test_materialize_replaces_its_previous_output(tiny_encoders, tiny_checkpoint, tmp_path):
    materialize(
        tmp_path / "repository", str(tiny_checkpoint), tiny_encoders, parameters={"decode": {"max_running_pages": "4"}}
    )
    repository = materialize(tmp_path / "repository", str(tiny_checkpoint), tiny_encoders)
    assert read_config(repository / "decode" / "configs" / "cpu.pbtxt").parameters[
        "max_running_pages"
    ].string_value == ("16")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repository"]  # no staging folders left behind


def test_materialize_fills_an_existing_empty_folder(tiny_encoders, tiny_checkpoint, tmp_path):
    (tmp_path / "repository").mkdir()
    repository = materialize(tmp_path / "repository", str(tiny_checkpoint), tiny_encoders)
    assert sorted(p.name for p in repository.iterdir()) == [
        "decode",
        "deepseek_ocr",
        "encode",
        *[f"encoder_{view}" for view in sorted(VIEW_SIZES, key=str)],
        "preprocess",
    ]


def test_materialize_of_a_folder_that_is_not_a_checkpoint_is_a_checkpoint_error(tiny_encoders, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a DeepSeek-OCR checkpoint"):
        materialize(tmp_path / "repository", str(tmp_path / "empty"), tiny_encoders)
    assert not (tmp_path / "repository").exists()


def test_a_materialized_repository_passes_the_checks(tiny_encoders, tiny_checkpoint, tmp_path):
    check_repository(materialize(tmp_path / "repository", str(tiny_checkpoint), tiny_encoders), "cpu")
