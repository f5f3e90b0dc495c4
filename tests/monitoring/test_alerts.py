"""The alert rules, their promtool tests, the Prometheus config and the Alertmanager config are valid, and every
alert is tested both ways."""

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.support.prometheus import running_prometheus, tool
from tests.support.triton_harness import free_ports

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
ALERTS = MONITORING / "alerts.yml"


def run(*command: str, cwd: Path = MONITORING) -> None:
    result = subprocess.run([tool(command[0]), *command[1:]], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"


def alert_rules() -> list[dict]:
    return [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"] if "alert" in rule
    ]


def test_promtool_accepts_the_alert_rules():
    run("promtool", "check", "rules", "alerts.yml")


def test_the_alert_unit_tests_pass():
    run("promtool", "test", "rules", "alerts.test.yml")


def test_every_alert_has_a_firing_and_a_quiet_case():
    tests = yaml.safe_load((MONITORING / "alerts.test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    fires = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fires == set(), "alerts without a case where they fire"
    assert names - quiet == set(), "alerts without a case where they stay quiet"


def test_promtool_accepts_the_prometheus_config(tmp_path):
    # check config also loads rule_files, resolved next to the config: a copy keeps the check off the checkout
    for name in ("prometheus.yml", "alerts.yml"):
        shutil.copy(MONITORING / name, tmp_path / name)
    run("promtool", "check", "config", "prometheus.yml", cwd=tmp_path)


def test_amtool_accepts_the_alertmanager_config():
    run("amtool", "check-config", "alertmanager.yml")


@pytest.mark.parametrize("labels, receiver", [("severity=page", "pager"), ("severity=warning", "team")])
def test_pages_go_to_the_pager_and_the_rest_to_the_team(labels, receiver):
    result = subprocess.run(
        [tool("amtool"), "config", "routes", "test", "--config.file=alertmanager.yml", "alertname=X", labels],
        cwd=MONITORING,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == receiver, result.stdout + result.stderr


@pytest.mark.prometheus
def test_a_real_prometheus_fires_the_down_alerts_for_targets_that_do_not_answer(tmp_path):
    # The job names of prometheus.yml, pointed at closed ports; for: is dropped so the test need not wait minutes.
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("for", None)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    api_port, triton_port = free_ports(2)
    targets = {"dsocr-api": [f"127.0.0.1:{api_port}"], "triton": [f"127.0.0.1:{triton_port}"]}
    with running_prometheus(tmp_path, targets, rule_files=[tmp_path / "alerts.yml"]) as prometheus:
        deadline = time.monotonic() + 30
        while not (prometheus.firing("DsocrApiDown") and prometheus.firing("DsocrTritonDown")):
            assert time.monotonic() < deadline, f"alerts after 30 s: {prometheus.alerts()}"
            time.sleep(0.5)
        assert [rule["name"] for rule in prometheus.rules() if rule["health"] == "err"] == [], "rules that failed"
