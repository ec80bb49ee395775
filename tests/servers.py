"""Start real servers from their binaries, on free ports, for the tests.

Locally a missing binary skips the test with a reason. Under CI (``CI`` or
``FLASK_STASH_REQUIRE_SERVERS`` set) it fails instead, so a broken install
step cannot pass as a green run.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import pytest


def servers_required() -> bool:
    """Whether a missing server must fail the run rather than skip."""
    flags = (os.environ.get("FLASK_STASH_REQUIRE_SERVERS", ""), os.environ.get("CI", ""))
    return any(flag.lower() in {"1", "true", "yes"} for flag in flags)


def require_binary(name: str, *candidates: str) -> str:
    """Return the path of binary *name*, or skip (fail under CI) without it."""
    for candidate in (name, *candidates):
        found = shutil.which(candidate) or (candidate if os.path.isfile(candidate) else None)
        if found:
            return found
    message = f"{name} is not installed (Debian package: see .ci/run)"
    if servers_required():
        pytest.fail(message + "; CI requires every server", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], log: IO[bytes] | None = None, timeout: float = 10.0
) -> None:
    """Block until *port* accepts connections, or fail if *process* dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = b""
            if log is not None:
                log.seek(0)
                output = log.read()
            raise RuntimeError(
                f"server exited with {process.returncode}: {output.decode(errors='replace')}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"server did not listen on port {port} within {timeout}s")


class ServerProcess:
    """A server started from its binary, which can be stopped and started again."""

    def __init__(
        self,
        argv: Sequence[str],
        port: int,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.port = port
        self.env = env
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        environ = {**os.environ, **(self.env or {})}
        # A file, not a pipe: a pipe nobody reads would block a chatty server.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self.process = subprocess.Popen(
            self.argv,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=environ,
            cwd=self.cwd,
        )
        wait_for_port(self.port, self.process, self.log)
        return self

    def stop(self) -> None:
        """Kill the server at once, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        if self.log is not None:
            self.log.close()
        self.process = None
        self.log = None

    def restart(self) -> None:
        self.stop()
        self.start()


class SilentServer:
    """Accepts connections and never answers, like a hung or overloaded server."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.05)
        self.port: int = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.held.append(connection)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        for connection in self.held:
            connection.close()
        self.listener.close()
