"""perf_analyzer streams real pages through the served ensemble: the benchmark's path, short, in CI."""

import base64
import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the benchmark scripts are not a package; their folder holds their helpers

import _serving  # noqa: E402
from perf_analyzer_ensemble import SMOKE, find_perf_analyzer, profile, read_csv, write_input_data  # noqa: E402

from dsocr.contract import OcrOptions  # noqa: E402

LEVELS = [1, 2]


def test_input_data_holds_the_page_as_a_serialised_bytes_tensor(tmp_path):
    page = _serving.page_png()
    path = write_input_data(tmp_path / "input.json", page, OcrOptions(mode="tiny"), budgets=[4, 8])
    entries = json.loads(path.read_text())["data"]
    assert [entry["MAX_NEW_TOKENS"]["content"] for entry in entries] == [[4], [8]]
    image = base64.b64decode(entries[0]["IMAGE"]["b64"])
    assert int.from_bytes(image[:4], "little") == len(page) and image[4:] == page
    assert page.startswith(b"\x89PNG")


def test_perf_analyzer_measures_the_streamed_ensemble_at_each_concurrency(triton_server, tmp_path):
    data = write_input_data(tmp_path / "input.json", _serving.page_png(), OcrOptions(mode="tiny", max_new_tokens=4))
    csv_path = tmp_path / "perf_analyzer.csv"

    levels = profile(
        find_perf_analyzer(),
        triton_server.grpc_url,
        data,
        csv_path,
        LEVELS,
        SMOKE,
        metrics_url=triton_server.metrics_url,
        log=lambda line: None,
    )

    rows = read_csv(csv_path)
    assert [row["Concurrency"] for row in rows] == LEVELS
    assert all(row["Inferences/Second"] > 0 and row["p50 latency"] > 0 for row in rows)
    assert [level.error for level in levels] == [None, None]
    # Every page went through decode and ran to its 4 tokens (the tiny model never ends a page itself).
    for level in levels:
        pages = level.engine['dsocr_decode_pages_total{finish_reason="length"}']
        assert pages >= SMOKE.total_requests
        assert level.engine["dsocr_decode_generated_tokens_total"] == 4 * pages
