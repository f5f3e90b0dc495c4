"""The Grafana dashboard's queries and the alert expressions are PromQL a real Prometheus accepts, and the dashboard
shows every signal the service exports."""

import json
from pathlib import Path

import pytest
import yaml

from tests.support.prometheus import running_prometheus

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
DASHBOARD = json.loads((MONITORING / "dashboard.json").read_text())

#: Metrics the dashboard must chart, each in some panel's query.
REQUIRED_METRICS = [
    "dsocr_api_pages_total",
    "dsocr_api_page_seconds_bucket",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_exec_count",
    "nv_inference_queue_duration_us",
    "dsocr_api_compression_ratio_bucket",
    "dsocr_api_page_vision_tokens_bucket",
    "dsocr_api_page_generated_tokens_bucket",
    "dsocr_canary_cer",
    "dsocr_canary_ned",
    "dsocr_canary_loop_rate",
    "dsocr_api_page_finish_total",
    "dsocr_api_retried_pages_total",
    "dsocr_api_page_mean_logprob_bucket",
    "dsocr_quality_drift",
    "dsocr_api_in_flight_pages",
    "dsocr_api_job_queue_depth",
    "dsocr_decode_waiting_pages",
    "dsocr_decode_running_pages",
    "nv_inference_pending_request_count",
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_FB_USED",
    "dsocr_api_requests_total",
]


def panels(items: list[dict]):
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))  # collapsed rows nest their panels


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in panels(DASHBOARD["panels"]) for target in panel.get("targets", [])]


def alert_exprs() -> list[str]:
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    with running_prometheus(tmp_path_factory.mktemp("prometheus")) as server:
        yield server


@pytest.mark.prometheus
def test_every_dashboard_and_alert_query_is_accepted_by_prometheus(prometheus):
    # Instant queries on an empty server: parse and type errors show up, the (empty) results do not matter.
    # Grafana's own variables ($__rate_interval, ...) would be parse errors here, which keeps them out.
    rejected = {}
    for expr in dashboard_exprs() + alert_exprs():
        answer = prometheus.query(expr)
        if answer["status"] != "success":
            rejected[expr] = answer.get("error")
    assert rejected == {}


def test_the_dashboard_charts_every_required_metric():
    exprs = "\n".join(dashboard_exprs())
    assert [name for name in REQUIRED_METRICS if name not in exprs] == []


def test_the_dashboard_queries_the_prometheus_datasource_variable():
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource" and variables["DS_PROMETHEUS"]["query"] == "prometheus"
    for panel in panels(DASHBOARD["panels"]):
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
    assert {p["type"] for p in panels(DASHBOARD["panels"])} >= {"timeseries", "stat", "heatmap"}
