# The README's two commands: `make demo` (set up, then OCR the bundled sample) and `make test` (lint + tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test clean tools pipeline reader deploy-check

setup: $(VENV)/.installed

# torch is installed on its own, pinned, so pip takes the CPU build where one is offered locally
# instead of resolving a newer release with its CUDA wheels.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[all,test]'
	touch $@

# Triton CPU server (python backend) and perf_analyzer, installed as tools under .tools/ (not pip
# dependencies of the library): pinned downloads, cached; a rerun is a no-op. See .tools/VERSIONS.
# Then the Debian packages the tests run as real tools: Prometheus, Alertmanager, chromium.
tools:
	VENV=$(VENV) PYTHON=$(PYTHON) scripts/install-triton-tools.sh
	scripts/install-debian-tools.sh

demo: setup
	$(BIN)/dsocr demo

test: setup tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

# Lints the deployment files: hadolint (Dockerfiles), kubectl kustomize of each k8s overlay checked by
# kubernetes-validate --strict and the prometheus-operator CRD schemas, promtool on the PrometheusRule (rendered from
# monitoring/alerts.yml), actionlint (workflows), the compose specification (compose.yaml). Tools: pinned installs.
deploy-check: setup
	scripts/install-debian-tools.sh
	VENV=$(VENV) scripts/install-deploy-tools.sh
	$(BIN)/python scripts/deploy_check.py

# The DVC pipeline of dvc.yaml and params.yaml: datasets -> checkpoints -> `dsocr eval` -> results/report.md. Its
# stages run `dsocr`, so the venv's bin goes first on PATH. .dvc/ is committed; `dvc init` is for a tree without it.
pipeline: setup
	test -d .dvc || $(BIN)/dvc init
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

# Trains the tiny reader again (the pipeline's `reader` stage, from params.yaml), evaluates it, and ships the result:
# dsocr/samples/reader/ (what `dsocr checkpoint reader` and `make demo` use) and its curve in benchmarks/results/.
reader: pipeline
	$(BIN)/python scripts/ship_reader.py

clean:
	rm -rf $(VENV) out .pytest_cache
