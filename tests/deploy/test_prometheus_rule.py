"""The PrometheusRule in k8s/base is the rendering of monitoring/alerts.yml: one source for the alert rules."""

from __future__ import annotations

import yaml

from tests.deploy.conftest import ROOT, load_deploy_check

deploy_check = load_deploy_check()
COMMITTED = ROOT / "k8s" / "base" / "prometheus-rule.yaml"
ALERTS = ROOT / "monitoring" / "alerts.yml"


def renderer():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "render_prometheus_rule", ROOT / "scripts" / "render_prometheus_rule.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_prometheus_rule_is_the_rendering_of_alerts_yml():
    assert COMMITTED.read_text() == renderer().render(ALERTS.read_text()), (
        "k8s/base/prometheus-rule.yaml is stale: run python scripts/render_prometheus_rule.py"
    )


def test_the_prometheus_rule_carries_the_alert_groups_unchanged():
    rule = yaml.safe_load(COMMITTED.read_text())
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"]


def test_a_change_to_alerts_yml_changes_the_rendering():
    text = ALERTS.read_text()
    assert renderer().render(text.replace("> 0.10", "> 0.20", 1)) != renderer().render(text)
