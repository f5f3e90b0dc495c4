"""The render worker: a fresh interpreter that opens PDFs with PDFium and answers calls on them over a socket.

Workers are fresh interpreters that import this module only (and what it imports): a worker forked or spawned
by ``multiprocessing`` would re-import the caller's main module, torch and all (a second of CPU and hundreds of
MB per worker). Failures go back as values, so a bad page never takes the pool down with it.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from dsocr.documents.errors import CorruptPdf, DocumentError, EncryptedPdf, NoPages, PageError


@dataclass(frozen=True)
class Call:
    """Work for a render worker: ``function(document, *args)`` on the document identified by ``document_key``."""

    document_key: int
    function: Callable[..., object]
    args: tuple = ()


class Worker:
    """One render process and the pool's end of the socket it is served over."""

    def __init__(self, memory_limit_bytes: int | None, start_s: float):
        ours, theirs = socket.socketpair()
        with theirs:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from dsocr.documents.workers import worker_main; worker_main()",
                    str(theirs.fileno()),
                ],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                # The caller's import path, so that a render function from any of its modules can be unpickled.
                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            )
        # With the worker holding the only other end, its death reads as end-of-file.
        self.connection = Connection(ours.detach())
        self.document_key: int | None = None
        self.connection.send(memory_limit_bytes)
        # A worker that cannot start is a setup error to raise, not a page to fail.
        if not self.connection.poll(start_s):
            self.stop(grace_s=0.0)
            raise RuntimeError(f"a render worker did not start within {start_s:g} s")
        try:
            self.connection.recv()
        except EOFError:
            raise RuntimeError(
                f"a render worker failed to start (exit code {self.stop(grace_s=1.0)}); its error is on stderr"
            ) from None

    def send(self, call: Call, pdf: bytes) -> None:
        """Send ``call``, with the PDF only if this worker does not have that document open already."""
        is_new = call.document_key != self.document_key
        self.connection.send((call, pdf if is_new else None))
        self.document_key = call.document_key

    def stop(self, grace_s: float) -> int:
        """Close the socket, give the process ``grace_s`` to end, kill it if it has not; returns its exit code.

        As with ``multiprocessing``, a negative exit code is the signal that ended the process.
        """
        self.connection.close()
        try:
            return self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def worker_main() -> None:
    """Entry point of a render worker process; argv[1] is the file descriptor of its socket to the pool."""
    connection = Connection(int(sys.argv[1]))
    _serve(connection, memory_limit_bytes=connection.recv())


def _serve(connection: Connection, memory_limit_bytes: int | None) -> None:
    """Worker loop: open each document once, then answer calls on it until the pool closes the socket.

    Failures go back as values: a DocumentError for the pool to raise, or a PageError for the page.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops the workers
    if memory_limit_bytes is not None:
        _limit_address_space(memory_limit_bytes)
    connection.send("ready")
    document_key, document = None, None
    while True:
        try:
            call, pdf = connection.recv()
        except EOFError:
            return
        try:
            if pdf is not None:
                document_key, document = None, None  # release the previous document before opening the next
                document = _open_pdf(pdf)
                document_key = call.document_key
            if call.document_key != document_key:
                raise RuntimeError("the worker has a different document open")  # a pool bug, never a wrong page
            result = call.function(document, *call.args)
        except DocumentError as error:
            result = error
        except MemoryError:
            result = PageError("render_memory", "rendering ran out of memory under the worker's limit")
        except Exception as error:
            result = PageError("render_failed", f"{type(error).__name__}: {error}")
        connection.send(result)


def _limit_address_space(extra_bytes: int) -> None:
    """Let this process map at most ``extra_bytes`` more than it has mapped now.

    Relative to the start-up size, because that depends on what the parent's main module imports.
    """
    in_use = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = in_use + extra_bytes if hard == resource.RLIM_INFINITY else min(in_use + extra_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _open_pdf(data: bytes) -> pdfium.PdfDocument:
    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError:
        raise _open_error(data) from None
    document.init_forms()  # so filled-in form fields show on the page images
    return document


def _open_error(data: bytes) -> DocumentError:
    """Why PDFium will not open ``data``.

    pypdfium2's ``err_code`` cannot say: pypdfium2 also refuses a document that loads but has no pages, and
    PDFium's last error is only set when a load fails, so it may belong to an earlier document. Loading
    again through the C API tells the two cases apart, and a failed load sets a fresh error.
    """
    handle = pdfium_c.FPDF_LoadMemDocument64(data, len(data), None)
    if handle:
        pdfium_c.FPDF_CloseDocument(handle)
        return NoPages("the PDF has no pages")
    reason = pdfium_c.FPDF_GetLastError()
    if reason == pdfium_c.FPDF_ERR_PASSWORD:
        return EncryptedPdf("the PDF is password-protected")
    if reason == pdfium_c.FPDF_ERR_SECURITY:
        return EncryptedPdf("the PDF is encrypted with a security handler PDFium does not support")
    return CorruptPdf("the PDF is damaged or truncated: PDFium cannot read its structure")


def death_error(exitcode: int) -> PageError:
    """Why a page failed, judged from the exit code of the render worker that died on it."""
    if exitcode == -signal.SIGABRT:
        # Under RLIMIT_AS, PDFium answers a failed allocation by aborting the process rather than raising.
        return PageError("render_memory", "the render worker aborted (SIGABRT), most likely over its memory limit")
    if exitcode == -signal.SIGKILL:
        return PageError("render_memory", "the render worker was killed (SIGKILL), most likely for lack of memory")
    if exitcode < 0:
        return PageError(
            "render_failed", f"the render worker died of signal {-exitcode} ({signal.strsignal(-exitcode)})"
        )
    return PageError("render_failed", f"the render worker died with exit status {exitcode}")
