"""The import layers of docs/architecture.md, checked on the source: who may import whom, and what stays light.

Each package of the core sits on a layer and imports only from its own layer and those below it:

    cli.py, arguments.py, engines.py          (the command: may import every package, api/ and export/ lazily)
    web/                                      (the contract only: everything else through the HTTP API)
    api/, export/                             (may import the core and client/)
    training/                                 (model, data, evaluation, tracking)
    registry/                                 (model, data, evaluation, tracking)
    evaluation/                               (data, documents, tracking; its cli.py the command's helpers)
    client/                                   (the contract, images)
    triton/, documents/                       (the contract, tokens, images; triton/ also model.source)
    data/, tracking.py                        (the contract, tokens, images, provenance)
    model/                                    (the contract, tokens, images)
    contract.py, tokens.py, images.py, provenance.py   (nothing of dsocr but each other)
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Where each package's source lives, by its import name.
SOURCES = {
    "dsocr.contract": ROOT / "dsocr" / "contract.py",
    "dsocr.tokens": ROOT / "dsocr" / "tokens.py",
    "dsocr.images": ROOT / "dsocr" / "images.py",
    "dsocr.model": ROOT / "dsocr" / "model",
    "dsocr.documents": ROOT / "dsocr" / "documents",
    "dsocr.triton": ROOT / "dsocr" / "triton",
    "dsocr.client": ROOT / "client",
    "dsocr.data": ROOT / "dsocr" / "data",
    "dsocr.evaluation": ROOT / "dsocr" / "evaluation",
    "dsocr.tracking": ROOT / "dsocr" / "tracking.py",
    "dsocr.registry": ROOT / "dsocr" / "registry",
    "dsocr.training": ROOT / "dsocr" / "training",
}
BASE = {"dsocr.contract", "dsocr.tokens", "dsocr.images", "dsocr.provenance"}
#: The command's own modules, which a package's cli.py uses to fill in its subcommand.
COMMAND = {"dsocr.arguments", "dsocr.engines"}
#: What each part of the core may import from dsocr, besides itself.
ALLOWED = {
    "dsocr.contract": BASE,
    "dsocr.tokens": BASE,
    "dsocr.images": BASE,
    "dsocr.model": BASE,
    "dsocr.documents": BASE,
    "dsocr.triton": BASE | {"dsocr.model.source", "dsocr.model.config"},
    "dsocr.client": BASE,
    "dsocr.data": BASE | {"dsocr.arguments"},  # its cli.py fills in `dsocr data`
    "dsocr.tracking": BASE,
    # Its cli.py also counts ground-truth tokens with a checkpoint's tokenizer.
    "dsocr.evaluation": BASE
    | COMMAND
    | {"dsocr.data", "dsocr.documents", "dsocr.tracking", "dsocr.model.source", "dsocr.model.tokenizer"},
    "dsocr.registry": BASE | {"dsocr.arguments", "dsocr.model", "dsocr.data", "dsocr.evaluation", "dsocr.tracking"},
    "dsocr.training": BASE | {"dsocr.model", "dsocr.data", "dsocr.evaluation", "dsocr.tracking"},
}


def dsocr_imports(path: Path) -> set[str]:
    """Every ``dsocr...`` module a file imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module == "dsocr":  # from dsocr import tokens: the module imported is dsocr.tokens
                found.update(f"dsocr.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("dsocr.")}


def files(source: Path) -> list[Path]:
    return [source] if source.is_file() else sorted(source.rglob("*.py"))


def within(module: str, allowed: set[str]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in allowed)


@pytest.mark.parametrize("package", sorted(SOURCES))
def test_each_part_of_the_core_imports_only_from_the_layers_below_it(package):
    allowed = ALLOWED[package] | {package}
    wrong = {
        f"{path.relative_to(ROOT)} imports {module}"
        for path in files(SOURCES[package])
        for module in dsocr_imports(path)
        if not within(module, allowed)
    }
    assert not wrong, sorted(wrong)


def test_the_core_outside_the_command_never_imports_the_api_or_the_exporter():
    core = [path for path in (ROOT / "dsocr").rglob("*.py") if path.name not in ("cli.py",)]
    wrong = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in core
        for module in dsocr_imports(path)
        if within(module, {"dsocr.api", "dsocr.export"})
    ]
    assert not wrong


def test_the_triton_models_import_only_the_backend_the_contract_and_what_they_compute_with():
    allowed = {"dsocr.triton.backend", "dsocr.contract", "dsocr.model"}
    wrong = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in (ROOT / "model_repository").glob("*/1/model.py")
        for module in dsocr_imports(path)
        if not within(module, allowed)
    ]
    assert not wrong


def loaded_after(code: str) -> set[str]:
    """The heavy modules loaded by ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or m.startswith(('dsocr.api', 'dsocr.export', 'dsocr.model.checkpoint')))))"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    return set(run.stdout.split())


def test_the_web_demo_knows_only_the_contract_and_talks_to_the_api_over_http():
    wrong = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in files(ROOT / "web")
        for module in dsocr_imports(path)
        if not within(module, {"dsocr.web", "dsocr.contract"})
    ]
    assert not wrong
    probe = "import dsocr.web.client, dsocr.web.pages, sys; print(' '.join(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert not {name.split(".")[0] for name in loaded.stdout.split()} & {"torch", "tritonclient", "grpc"}


def test_the_client_and_the_api_run_without_torch():
    loaded = loaded_after("import dsocr.client, dsocr.api.app")
    assert not {name for name in loaded if name.split(".")[0] == "torch"}


def test_dsocr_help_loads_none_of_the_packages_behind_its_commands():
    assert loaded_after("from dsocr.cli import build_parser; build_parser(['--help'])") == set()


def test_the_ocr_command_against_a_server_loads_no_torch():
    loaded = loaded_after(
        "from dsocr.cli import build_parser; build_parser(['ocr', 'x.pdf', '--server', 'h:1'])\n"
        "import dsocr.documents.batch, dsocr.client"
    )
    assert not {name for name in loaded if name.split(".")[0] == "torch"}


def test_the_dataset_format_and_the_metrics_load_no_torch():
    loaded = loaded_after("import dsocr.data.dataset, dsocr.data.synth, dsocr.evaluation.metrics")
    assert not {name for name in loaded if name.split(".")[0] == "torch"}


def test_scoring_predictions_and_the_registry_run_without_torch():
    loaded = loaded_after(
        "import dsocr.evaluation.cli, dsocr.evaluation.runner, dsocr.registry.registry, dsocr.tracking"
    )
    assert not {name for name in loaded if name.split(".")[0] == "torch"}
