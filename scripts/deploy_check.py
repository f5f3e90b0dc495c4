"""The deployment checks behind `make deploy-check`: every linter on every deployment file, one line per check.

    python scripts/deploy_check.py                    # all of them (what make deploy-check runs)
    python scripts/deploy_check.py hadolint FILE...   # one linter on given files (tests/deploy feeds broken copies)

Linters: hadolint (Dockerfiles), actionlint (workflows), compose (check-jsonschema, the compose specification),
overlays (kubectl kustomize of each overlay, then the three below), k8s-schemas (kubernetes-validate --strict),
crds (prometheus-operator CRD schemas), rules (promtool check rules on the PrometheusRule), rule-source (the
PrometheusRule is the rendering of monitoring/alerts.yml). The tools come from scripts/install-deploy-tools.sh.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
KUBERNETES_VERSION = "1.37.0"
CRD_VALIDATOR = ROOT / ".tools" / "deploy" / "crd-validator" / "validate.mjs"
CRD_GROUP = "monitoring.coreos.com/"
DOCKERFILES = ["Dockerfile.triton", "Dockerfile.api"]
OVERLAYS = ["k8s/overlays/cpu-dev", "k8s/overlays/gpu"]


class CheckFailed(Exception):
    pass


def tool(name: str) -> str:
    """The venv's copy first (where the install script puts them), then PATH."""
    path = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if path is None:
        raise CheckFailed(f"`{name}` is not installed: run `make deploy-check` (scripts/install-deploy-tools.sh)")
    return path


def run(*command: str, stdin: str | None = None) -> str:
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=300)
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise CheckFailed(output or f"{command[0]} exited with {result.returncode}")
    return output


def hadolint(*files: str) -> None:
    run(tool("hadolint"), *files)


def actionlint(*files: str) -> None:
    run(tool("actionlint"), "-no-color", *files)


def compose(*files: str) -> None:
    run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", *files)


def load_documents(file: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(Path(file).read_text()) if doc]


def is_crd_kind(doc: dict) -> bool:
    return doc.get("apiVersion", "").startswith(CRD_GROUP)


def k8s_schemas(file: str) -> None:
    """Every built-in kind against Kubernetes' own schemas; an unknown kind is an error, not a warning."""
    docs = [doc for doc in load_documents(file) if not is_crd_kind(doc)]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as core:
        yaml.safe_dump_all(docs, core)
        core.flush()
        output = run(
            tool("kubernetes-validate"), "--strict", "--quiet", "--kubernetes-version", KUBERNETES_VERSION, core.name
        )
    if "Couldn't find schema" in output or "ERROR" in output:
        raise CheckFailed(output)


def crds(file: str) -> None:
    docs = [doc for doc in load_documents(file) if is_crd_kind(doc)]
    if not CRD_VALIDATOR.exists():
        raise CheckFailed(f"{CRD_VALIDATOR} is missing: run `make deploy-check` (scripts/install-deploy-tools.sh)")
    run(tool("node"), str(CRD_VALIDATOR), stdin=json.dumps(docs))


def rules(file: str) -> None:
    groups = [
        group for doc in load_documents(file) if doc.get("kind") == "PrometheusRule" for group in doc["spec"]["groups"]
    ]
    if not groups:
        raise CheckFailed(f"{file}: no PrometheusRule groups")
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as rule_file:
        yaml.safe_dump({"groups": groups}, rule_file)
        rule_file.flush()
        run(tool("promtool"), "check", "rules", rule_file.name)


def rule_source() -> None:
    run(sys.executable, str(ROOT / "scripts" / "render_prometheus_rule.py"), "--check")


def overlays(*directories: str) -> None:
    """Render each overlay with kubectl kustomize and run k8s-schemas, crds and rules on the result."""
    for directory in directories:
        rendered = run(tool("kubectl"), "kustomize", directory)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as out:
            out.write(rendered)
            out.flush()
            for check in (k8s_schemas, crds, rules):
                try:
                    check(out.name)
                except CheckFailed as failure:
                    raise CheckFailed(f"{directory}: {check.__name__}: {failure}") from None


LINTERS = {
    "hadolint": hadolint,
    "actionlint": actionlint,
    "compose": compose,
    "k8s-schemas": k8s_schemas,
    "crds": crds,
    "rules": rules,
    "overlays": overlays,
}


def everything() -> list[tuple[str, object, tuple[str, ...]]]:
    workflows = tuple(sorted(str(p.relative_to(ROOT)) for p in (ROOT / ".github" / "workflows").glob("*.yml")))
    return [
        ("hadolint", hadolint, tuple(DOCKERFILES)),
        ("actionlint", actionlint, workflows),
        ("compose", compose, ("compose.yaml",)),
        ("rule-source", lambda: rule_source(), ()),
        *[("overlays", overlays, (d,)) for d in OVERLAYS],
    ]


def main(argv: list[str]) -> int:
    if argv:
        name, *files = argv
        if name not in LINTERS:
            print(f"unknown check {name!r}: choose one of {', '.join(LINTERS)}", file=sys.stderr)
            return 2
        checks = [(name, LINTERS[name], tuple(files))]
    else:
        checks = everything()
    failed = 0
    for name, check, files in checks:
        try:
            check(*files)
            print(f"ok    {name} {' '.join(files)}".rstrip())
        except CheckFailed as failure:
            failed += 1
            print(f"FAIL  {name} {' '.join(files)}\n{failure}".rstrip())
    # Worded unlike a test runner's closing line, so CI logs never read it as the test count.
    print(
        f"deploy-check: {failed} of {len(checks)} checks failed"
        if failed
        else f"deploy-check: all {len(checks)} checks ok"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
