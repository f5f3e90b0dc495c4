"""End to end: a real Prometheus scrapes a `dsocr api` process (the one `dsocr serve --with-api` starts, here on
the session's Triton server) and evaluates
monitoring/alerts.yml; clean pages set the baseline, degraded pages must make a drift alert fire.

The checkpoint is the random tiny one (no trained reader has landed yet), so its signals carry no meaning of their
own: what is tested is that a change of input distribution moves them far enough, fast enough, through the whole
chain (decode's MEAN_LOGPROB → API drift gauges → scrape → rule → alert). On the random checkpoint every page runs
to its token limit, so only the confidence moves; its sign is arbitrary (degraded pages read *higher* here).
"""

import io
import time

import numpy as np
import pytest
import yaml
from PIL import Image, ImageFilter

from dsocr.data.dataset import Dataset
from dsocr.data.synth import synthesize
from tests.support.api_harness import ApiProcess, client, form
from tests.support.prometheus import running_prometheus

pytestmark = [pytest.mark.triton, pytest.mark.prometheus]

BASELINE_PAGES, WINDOW_PAGES = 30, 20
#: The issue's bound: the alert fires within this many degraded pages.
MAX_DEGRADED_PAGES = 200
DRIFT_ALERTS = {"DsocrConfidenceDrift", "DsocrCompressionRatioDrift", "DsocrLoopRateDrift"}


def fast_rules(folder) -> list:
    """monitoring/alerts.yml with every ``for`` cut to 2 s, so the test waits seconds, not minutes."""
    rules = yaml.safe_load(open("monitoring/alerts.yml"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = "2s"
    path = folder / "alerts.yml"
    path.write_text(yaml.safe_dump(rules))
    return [path]


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def degraded(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Blurred, faded to grey and noisy: a bad scan."""
    pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(4)), dtype=float)
    pixels = pixels * 0.4 + 100 + rng.normal(0, 40, pixels.shape)
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def firing(prometheus) -> set[str]:
    return {a["labels"]["alertname"] for a in prometheus.alerts() if a["state"] == "firing"}


def test_degraded_pages_fire_a_drift_alert_in_prometheus_and_clean_pages_do_not(triton_server, tmp_path):
    dataset = Dataset.load(synthesize(tmp_path / "pages", pages=BASELINE_PAGES + WINDOW_PAGES, seed=11))
    pages = [dataset.open_page(i) for i in range(len(dataset))]
    drift = {"DSOCR_API_DRIFT_BASELINE_PAGES": str(BASELINE_PAGES), "DSOCR_API_DRIFT_WINDOW_PAGES": str(WINDOW_PAGES)}
    with (
        ApiProcess(triton_server.grpc_url, tmp_path / "jobs.sqlite3", tmp_path / "api.log", env=drift) as api,
        client(api.url) as http,
        running_prometheus(
            tmp_path, {"dsocr-api": [api.url.removeprefix("http://")]}, rule_files=fast_rules(tmp_path)
        ) as prometheus,
    ):

        def send(image: Image.Image) -> None:
            response = http.post("/ocr/predict", files={"file": ("page.png", png(image))}, data=form())
            assert response.status_code == 200, response.text

        for page in pages:  # the baseline, then a full window of clean pages
            send(page)
        time.sleep(5)  # scrapes, evaluations and a `for` of 2 s: long enough for a false alert to show
        false_alerts = firing(prometheus)

        rng = np.random.default_rng(0)
        sent = 0
        while sent < MAX_DEGRADED_PAGES and not firing(prometheus) & DRIFT_ALERTS:
            send(degraded(pages[sent % len(pages)], rng))
            sent += 1
        fired = firing(prometheus) & DRIFT_ALERTS

    print(f"drift alert {sorted(fired)} after {sent} degraded pages; alerts before degradation: {false_alerts}")
    # Every page of the random checkpoint runs to its token limit: the loop-rate alert is right to fire, and
    # nothing else may.
    assert false_alerts == {"DsocrLoopRateHigh"}, f"alerts fired on clean pages: {false_alerts}"
    assert fired, f"no drift alert after {MAX_DEGRADED_PAGES} degraded pages"
