"""Run ``tritonserver`` on a model repository as a child process: start, wait until ready, stop.

The server is the CPU build ``make tools`` installs under ``.tools/`` (or any ``tritonserver`` given or on
PATH). Its python backend stub finds python, numpy and dsocr through PATH, so this interpreter's ``bin/``
goes first there.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

#: Where ``make tools`` installs the server when this package runs from its checkout (an editable install); a
#: package installed from a wheel finds it through ``--tritonserver``, ``$DSOCR_TRITONSERVER`` or PATH.
CHECKOUT_TOOLS = Path(__file__).resolve().parents[2] / ".tools"
BUNDLED_SERVER = CHECKOUT_TOOLS / "triton" / "bin" / "tritonserver"
BINARY_ENV = "DSOCR_TRITONSERVER"
READY_PROBE_INTERVAL_S = 0.25
LOG_TAIL_LINES = 20
#: The server is local: an http_proxy set for the outside world must not see the readiness probes.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerError(RuntimeError):
    """tritonserver could not be found, started, brought to readiness, or kept running."""

    def __init__(self, message: str, log_path: Path | None = None, reason: str | None = None, log_tail=()):
        self.message, self.log_path, self.reason = message, log_path, reason
        text = message + (f": {reason}" if reason else "")
        if log_path:
            text += f"; log {log_path}" + (", last lines:" if log_tail else "")
            text += "".join(f"\n  | {line}" for line in log_tail)
        super().__init__(text)

    def one_line(self) -> str:
        return (
            self.message
            + (f": {self.reason}" if self.reason else "")
            + (f" (log: {self.log_path})" if self.log_path else "")
        )


def _answers(url: str) -> bool:
    try:
        with _DIRECT.open(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def failure_reason(log: str) -> str | None:
    """Why the server failed, from its log: the first model that failed to load, else Triton's fatal error.

    Triton's startup prints unrelated errors on a CPU machine (no CUDA driver, no NVML), so not just any error line.
    """
    failed_load = _FAILED_LOAD.search(log)
    if failed_load:
        return failed_load[1].split("\\n")[0]  # the message continues with an escaped traceback
    fatal = [line for line in log.splitlines() if line.startswith("error: ")]
    return fatal[-1].removeprefix("error: ") if fatal else None


# A glog error line such as: E1126 01:52:08.241479 1588 model_lifecycle.cc:642] "failed to load 'encode' ..."
_FAILED_LOAD = re.compile(r'^E\d{4} .*?\] "(failed to load .*)"$', re.MULTILINE)


def find_tritonserver(explicit: str | Path | None = None) -> Path:
    """The first of: ``explicit``, ``$DSOCR_TRITONSERVER``, ``.tools/triton/bin/tritonserver``, PATH."""
    try:
        return find_tool("tritonserver", explicit, BINARY_ENV, BUNDLED_SERVER)
    except FileNotFoundError as error:
        raise ServerError(str(error)) from None


def find_tool(name: str, explicit: str | Path | None, env_var: str, bundled: Path) -> Path:
    """The first of: ``explicit``, ``$env_var``, ``bundled`` (where ``make tools`` puts it), ``name`` on PATH."""
    for candidate, origin in ((explicit, "given"), (os.environ.get(env_var), f"${env_var}")):
        if candidate:
            path = Path(candidate).expanduser()
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise FileNotFoundError(f"{name} {path} ({origin}) is not an executable file")
            return path.absolute()
    if bundled.is_file():
        return bundled
    on_path = shutil.which(name)
    if on_path:
        return Path(on_path)
    raise FileNotFoundError(f"no {name} found (not in {bundled.parent}, not on PATH): run `make tools`")


def backend_directory(binary: Path) -> Path | None:
    """The python backend next to a ``make tools`` install; other installs use their built-in default."""
    candidate = binary.resolve().parent.parent / "backends"
    return candidate if (candidate / "python").is_dir() else None


class TritonServer:
    """``tritonserver`` serving ``repository``, as a context manager that starts it and waits until ready."""

    def __init__(
        self,
        repository: str | Path,
        *,
        config_name: str = "cpu",
        binary: str | Path | None = None,
        host: str = "127.0.0.1",
        http_port: int | None = None,
        grpc_port: int | None = None,
        metrics_port: int | None = None,
        log_path: str | Path | None = None,
        exit_timeout_s: int = 30,
        extra_args: tuple[str, ...] = (),
    ):
        self.repository = Path(repository).absolute()
        self.config_name = config_name
        self.binary = find_tritonserver(binary)
        self.host = host
        self.ports = {"http": http_port, "grpc": grpc_port, "metrics": metrics_port}
        self.log_path = Path(log_path) if log_path else None
        self.exit_timeout_s = exit_timeout_s
        self.extra_args = tuple(extra_args)
        self.process: subprocess.Popen | None = None

    # Where clients connect: a wildcard bind address is reached through loopback.
    @property
    def _connect_host(self) -> str:
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"[{host}]" if ":" in host else host

    @property
    def grpc_url(self) -> str:
        return f"{self._connect_host}:{self.ports['grpc']}"

    @property
    def http_url(self) -> str:
        return f"http://{self._connect_host}:{self.ports['http']}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self._connect_host}:{self.ports['metrics']}/metrics"

    def __enter__(self) -> TritonServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        """Launch the process; returns at once (see ``wait_ready``)."""
        if self.process is not None:
            raise ServerError("this server was already started")
        self._choose_ports()
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="tritonserver-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
        with open(self.log_path, "wb") as log:
            # Its own session: a Ctrl-C on the terminal reaches only us, and we decide how the server stops.
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_terminate_with_parent,
            )

    def command(self) -> list[str]:
        args = [
            str(self.binary),
            f"--model-repository={self.repository}",
            f"--model-config-name={self.config_name}",
            "--disable-auto-complete-config",  # the configs are complete and checked; never let Triton guess
            f"--exit-timeout-secs={self.exit_timeout_s}",
            "--log-verbose=0",
        ]
        backends = backend_directory(self.binary)
        if backends:
            args.append(f"--backend-directory={backends}")
        for protocol in ("http", "grpc", "metrics"):
            args += [f"--{protocol}-address={self.host}", f"--{protocol}-port={self.ports[protocol]}"]
        return args + list(self.extra_args)

    def wait_ready(self, timeout_s: float = 300, interrupt: threading.Event | None = None) -> bool:
        """Block until ``is_ready``; False if ``interrupt`` was set first.

        Raises ``ServerError`` with the end of the server log when the process exits or the deadline passes.
        """
        deadline = time.monotonic() + timeout_s
        while not self.is_ready():
            if interrupt is not None and interrupt.is_set():
                return False
            if self.process.poll() is not None:
                raise self.error(f"tritonserver exited with status {self.process.returncode} before it was ready")
            if time.monotonic() > deadline:
                raise self.error(f"tritonserver was not ready within {timeout_s:.0f} s")
            time.sleep(READY_PROBE_INTERVAL_S)
        return True

    def is_ready(self) -> bool:
        """Ready on HTTP and serving metrics: Triton opens its metrics port a moment after it reports ready."""
        return _answers(f"{self.http_url}/v2/health/ready") and _answers(self.metrics_url)

    def stop(self, timeout_s: float | None = None, signum: int = signal.SIGTERM) -> int | None:
        """Send ``signum`` (Triton drains in-flight requests), SIGKILL the process group after ``timeout_s``.

        Returns the exit status (negative: killed by that signal), or None if it was never started.
        """
        if self.process is None:
            return None
        timeout_s = self.exit_timeout_s + 10 if timeout_s is None else timeout_s
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                # The python backend stubs share the server's process group; take them down too.
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def error(self, message: str) -> ServerError:
        """A ``ServerError`` carrying the reason found in this server's log and the log's last lines."""
        log = self.log_path.read_text(errors="replace") if self.log_path and self.log_path.is_file() else ""
        return ServerError(message, self.log_path, failure_reason(log), log.splitlines()[-LOG_TAIL_LINES:])

    def _choose_ports(self) -> None:
        """Check the given ports are free, and pick free ones for the rest (all bound at once: no duplicates)."""
        held = []
        try:
            for protocol, port in self.ports.items():
                sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
                held.append(sock)
                # As the server does: a port in TIME_WAIT is free, one another process listens on is not.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((self.host, port or 0))
                except OSError as err:
                    raise ServerError(f"cannot listen for {protocol} on {self.host}:{port}: {err.strerror}") from None
                self.ports[protocol] = sock.getsockname()[1]
        finally:
            for sock in held:
                sock.close()


def _terminate_with_parent() -> None:
    """In the child before exec: if the process that started the server dies, the server is told to stop."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _find_prctl():
    """libc's prctl, looked up here because nothing may be imported between fork and exec."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None


_PR_SET_PDEATHSIG = 1
_PRCTL = _find_prctl()
