"""`dsocr web`: refuses what cannot be an API address before starting Streamlit."""

import subprocess
import sys


def test_an_api_address_that_is_not_an_http_url_is_refused_in_one_line():
    command = [sys.executable, "-m", "dsocr.cli", "web", "--api", "127.0.0.1:8080"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 2
    assert finished.stderr.strip() == "dsocr web: error: --api must be an http:// or https:// URL, got '127.0.0.1:8080'"
