"""The canary: the labelled set replayed through the served ensemble, scored as `dsocr eval` scores it."""

import asyncio
import os
import subprocess
import sys

from dsocr.api.canary import Canary, default_canary
from dsocr.api.metrics import Metrics
from dsocr.api.quality import DriftMonitor
from dsocr.api.triton import TritonLink
from dsocr.data.dataset import Dataset
from tests.support.api_harness import api_server, client, metric, settings
from tests.support.triton_harness import free_ports

CANARY = {"canary_mode": "tiny", "canary_max_new_tokens": 4}


def test_the_shipped_canary_set_is_a_labelled_dataset():
    dataset = Dataset.load(default_canary())
    assert len(dataset) >= 3
    assert all(entry.ground_truth for entry in dataset)


def test_the_api_runs_the_canary_after_start_up_and_publishes_its_scores(triton_server, tmp_path):
    api_settings = settings(triton_server.grpc_url, tmp_path, canary_enabled=True, canary_delay_s=0, **CANARY)
    with api_server(api_settings) as url, client(url) as http:
        for _ in range(300):
            if metric(http, "dsocr_canary_last_run_timestamp_seconds") > 0:
                break
            asyncio.run(asyncio.sleep(0.1))
        assert metric(http, "dsocr_canary_last_run_ok") == 1
        assert metric(http, "dsocr_canary_last_success_timestamp_seconds") > 0
        # Four tokens of a random checkpoint read nothing: every page at the limit, CER about 1.
        assert metric(http, "dsocr_canary_loop_rate") == 1
        assert 0.5 < metric(http, "dsocr_canary_cer") <= 1
        assert metric(http, "dsocr_canary_ned") > 0.5
        # Canary pages are the reference, not the traffic: they stay out of the page metrics.
        assert metric(http, "dsocr_api_pages_total") == 0


def test_a_canary_run_without_a_server_is_a_failed_run_not_a_crash(tmp_path):
    [port] = free_ports(1)
    api_settings = settings(f"127.0.0.1:{port}", tmp_path, **CANARY)
    metrics = Metrics(DriftMonitor(window=1, baseline_pages=1))

    async def run() -> dict | None:
        link = TritonLink(api_settings, metrics)
        try:
            await link.check()
            return await Canary(api_settings, Dataset.load(default_canary()), link, metrics).run_once()
        finally:
            await link.close()

    assert asyncio.run(run()) is None
    value = metrics.registry.get_sample_value
    assert value("dsocr_canary_last_run_ok") == 0
    assert value("dsocr_canary_last_run_timestamp_seconds") > 0
    assert value("dsocr_canary_last_success_timestamp_seconds") == 0


def test_dsocr_api_refuses_a_canary_set_that_does_not_load_before_it_serves(tmp_path):
    env = {**os.environ, "DSOCR_API_CANARY_DATA": str(tmp_path / "missing"), "DSOCR_API_JOBS_DB": str(tmp_path / "j")}
    command = [sys.executable, "-m", "dsocr.cli", "api", "--server", "127.0.0.1:1", "--port", "1"]
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 2
    assert finished.stderr.startswith("dsocr api: error:") and "missing" in finished.stderr
    assert "Traceback" not in finished.stderr
