"""`make deploy-check` passes on the committed files, and each of its linters fails on a deliberately broken copy.
A linter that is not installed skips its tests (scripts/install-deploy-tools.sh installs them)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import ROOT, load_deploy_check

deploy_check = load_deploy_check()


def needs(*tools: str) -> None:
    for name in tools:
        try:
            deploy_check.tool(name)
        except deploy_check.CheckFailed:
            pytest.skip(f"`{name}` is not installed: run `make deploy-check` (scripts/install-deploy-tools.sh)")


def broken_copy(tmp_path: Path, source: str, old: str, new: str) -> str:
    text = (ROOT / source).read_text()
    assert old in text, f"{source} no longer contains {old!r}: update this test"
    target = tmp_path / Path(source).name
    target.write_text(text.replace(old, new, 1))
    return str(target)


def rendered_copy(tmp_path: Path, change) -> str:
    """The cpu-dev overlay rendered by kubectl kustomize, with ``change`` applied to its documents."""
    needs("kubectl")
    docs = [d for d in yaml.safe_load_all(deploy_check.run("kubectl", "kustomize", "k8s/overlays/cpu-dev")) if d]
    change(docs)
    target = tmp_path / "rendered.yaml"
    target.write_text(yaml.safe_dump_all(docs))
    return str(target)


def fails(check, *files: str) -> str:
    with pytest.raises(deploy_check.CheckFailed) as failure:
        check(*files)
    return str(failure.value)


def by_kind(docs, kind):
    return next(d for d in docs if d["kind"] == kind)


def test_every_deployment_check_passes():
    needs("hadolint", "actionlint", "check-jsonschema", "kubectl", "kubernetes-validate", "node", "promtool")
    for name, check, files in deploy_check.everything():
        check(*files)  # raises CheckFailed with the tool's output


def test_hadolint_rejects_an_unpinned_pip_install(tmp_path):
    needs("hadolint")
    copy = broken_copy(tmp_path, "Dockerfile.api", "USER 10001:10001", "RUN pip install requests\nUSER 10001:10001")
    assert "DL3013" in fails(deploy_check.hadolint, copy)


def test_actionlint_rejects_an_undefined_matrix_property(tmp_path):
    needs("actionlint")
    copy = broken_copy(tmp_path, ".github/workflows/images.yml", "matrix.dockerfile }}", "matrix.dockerfil }}")
    assert "dockerfil" in fails(deploy_check.actionlint, copy)


def test_the_compose_schema_rejects_an_unknown_service_key(tmp_path):
    needs("check-jsonschema")
    copy = broken_copy(tmp_path, "compose.yaml", "    read_only: true", "    readonly: true")
    assert "readonly" in fails(deploy_check.compose, copy)


def test_kubernetes_validate_rejects_a_misspelt_field(tmp_path):
    needs("kubernetes-validate")

    def misspell(docs):
        context = by_kind(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["securityContext"]
        context["readOnlyRootFileSystem"] = context.pop("readOnlyRootFilesystem")

    assert "readOnlyRootFileSystem" in fails(deploy_check.k8s_schemas, rendered_copy(tmp_path, misspell))


def test_kubernetes_validate_rejects_an_unknown_kind(tmp_path):
    needs("kubernetes-validate")

    def misspell(docs):
        by_kind(docs, "Deployment")["kind"] = "Deploymnet"

    fails(deploy_check.k8s_schemas, rendered_copy(tmp_path, misspell))


def test_the_crd_schemas_reject_a_rule_without_expr(tmp_path):
    needs("node")
    if not deploy_check.CRD_VALIDATOR.exists():
        pytest.skip(f"{deploy_check.CRD_VALIDATOR} is missing: run `make deploy-check`")

    def drop_expr(docs):
        del by_kind(docs, "PrometheusRule")["spec"]["groups"][0]["rules"][0]["expr"]

    assert "expr" in fails(deploy_check.crds, rendered_copy(tmp_path, drop_expr))


def test_the_crd_schemas_reject_a_pod_monitor_port_of_the_wrong_type(tmp_path):
    needs("node")
    if not deploy_check.CRD_VALIDATOR.exists():
        pytest.skip(f"{deploy_check.CRD_VALIDATOR} is missing: run `make deploy-check`")

    def port_as_list(docs):
        by_kind(docs, "PodMonitor")["spec"]["podMetricsEndpoints"][0]["port"] = ["metrics"]

    assert "PodMonitor" in fails(deploy_check.crds, rendered_copy(tmp_path, port_as_list))


def test_promtool_rejects_a_rule_that_does_not_parse(tmp_path):
    needs("promtool")

    def break_promql(docs):
        by_kind(docs, "PrometheusRule")["spec"]["groups"][0]["rules"][0]["expr"] = "max(dsocr_canary_cer >"

    fails(deploy_check.rules, rendered_copy(tmp_path, break_promql))


def test_kustomize_failures_are_reported(tmp_path):
    needs("kubectl")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text("resources:\n  - missing.yaml\n")
    fails(deploy_check.overlays, str(overlay))


def test_a_missing_tool_is_reported_not_ignored(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    assert "not installed" in fails(deploy_check.hadolint, "Dockerfile.api")
