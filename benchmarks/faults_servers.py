"""The processes of the fault benchmark: the store under test, its faults, and gunicorn.

A :class:`Store` is a memcached or Redis server started from its binary on
a free port, with a small memory limit so that it can be filled to
eviction. It can be killed (SIGKILL), started again on the same port,
frozen (SIGSTOP) and thawed (SIGCONT), filled with junk by a separate
process, and (Redis only) paused for writes with ``CLIENT PAUSE ... WRITE``.

Run as ``python -m benchmarks.faults_servers fill memcached|redis PORT RATE``,
this module is that filler: it writes junk values of 1 to 4 KiB as fast as
it can until the server evicts, then *RATE* values a second until it is
terminated.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import redis
from pymemcache.client.base import Client as MemcacheClient
from tests.servers import ServerProcess, free_port

from .bench_remote import memcached_argv, redis_argv

__all__ = ["STORES", "Store", "gunicorn"]

ROOT = Path(__file__).resolve().parent.parent
STORES = ("memcached", "redis")
#: Memcached's smallest useful limit (it keeps a slab page per size class
#: anyway, so it holds about 4 MiB of small values); Redis is given 4 MiB.
MEMCACHED_MEGABYTES = 2
REDIS_MAXMEMORY = "4mb"
JUNK_SIZES = (1024, 4096)
FILL_BATCH = 50


class Store:
    """A memcached or Redis server under test, and the faults it can be put through."""

    def __init__(self, kind: str) -> None:
        if kind not in STORES:
            raise ValueError(f"store must be one of {', '.join(STORES)}, not {kind!r}")
        self.kind = kind
        port = free_port()
        if kind == "memcached":
            argv = [*memcached_argv(port), "-m", str(MEMCACHED_MEGABYTES)]
        else:
            argv = [
                *redis_argv(port),
                *("--maxmemory", REDIS_MAXMEMORY, "--maxmemory-policy", "allkeys-lru"),
            ]
        self.server = ServerProcess(argv, port)
        self.filler: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return self.server.address

    def version(self) -> str:
        binary = "memcached" if self.kind == "memcached" else "redis-server"
        flag = "-V" if self.kind == "memcached" else "--version"
        output = subprocess.run([binary, flag], capture_output=True, text=True, check=False)
        words = output.stdout.split()
        if self.kind == "redis":
            words = [word.removeprefix("v=") for word in words if word.startswith("v=")]
        return f"{binary} {words[-1] if words else '?'}"

    def start(self) -> None:
        self.server.start()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self.server.stop()

    def freeze(self) -> None:
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, number: signal.Signals) -> None:
        process = self.server.process
        if process is not None and process.poll() is None:
            process.send_signal(number)

    def evictions(self) -> int:
        """Entries the server has evicted since it started."""
        if self.kind == "memcached":
            memcached = _memcached(self.server.port, 2.0)
            try:
                return int(memcached.stats()[b"evictions"])
            finally:
                memcached.close()
        client = _redis(self.server.port, 2.0)
        try:
            return int(client.info("stats")["evicted_keys"])
        finally:
            client.close()

    def pause_writes(self, milliseconds: int) -> None:
        """Redis only: hold every write for *milliseconds*; reads go on."""
        client = _redis(self.server.port, 2.0)
        try:
            client.client_pause(milliseconds, all=False)  # CLIENT PAUSE <ms> WRITE
        finally:
            client.close()

    def start_filling(self, rate: int) -> None:
        argv = [sys.executable, "-m", "benchmarks.faults_servers", "fill", self.kind]
        self.filler = subprocess.Popen(
            [*argv, str(self.server.port), str(rate)], cwd=ROOT, stdout=subprocess.DEVNULL
        )

    def stop_filling(self) -> None:
        filler, self.filler = self.filler, None
        if filler is not None and filler.poll() is None:
            filler.terminate()
            try:
                filler.wait(timeout=5)
            except subprocess.TimeoutExpired:
                filler.kill()
                filler.wait(timeout=5)

    def close(self) -> None:
        """Stop the filler and the server, whatever state they are in."""
        self.stop_filling()
        self.thaw()  # SIGKILL ends a stopped process too, but leave nothing frozen
        self.server.stop()


def _memcached(port: int, timeout: float) -> MemcacheClient:
    return MemcacheClient(
        ("127.0.0.1", port), connect_timeout=timeout, timeout=timeout, no_delay=True
    )


def _redis(port: int, timeout: float) -> redis.Redis:
    return redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=timeout, socket_connect_timeout=timeout
    )


# -- gunicorn ------------------------------------------------------------------


def gunicorn_argv(port: int, workers: int, threads: int) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        *("--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread"),
        *("--bind", f"127.0.0.1:{port}", "--log-level", "warning"),
        *("--graceful-timeout", "5", "--keep-alive", "5"),
        "benchmarks.faults_app:create_app()",
    ]
    # setsid makes the master the leader of a new process group (the Popen
    # child is not a group leader, so setsid execs without forking): the
    # whole group, workers included, can then be killed by its id.
    return ["setsid", *argv] if shutil.which("setsid") else argv


@contextlib.contextmanager
def gunicorn(env: dict[str, str], workers: int, threads: int) -> Iterator[ServerProcess]:
    """Serve the fault app under gunicorn; stop the master and every worker on the way out."""
    port = free_port()
    environ = {**env, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = ServerProcess(gunicorn_argv(port, workers, threads), port, env=environ, cwd=ROOT)
    process.start()
    popen = process.process
    assert popen is not None
    wait_for_workers(port, workers)
    # The master listens by now, so setsid has run: is it a group of its own?
    leads_group = os.getpgid(popen.pid) == popen.pid
    try:
        yield process
    finally:
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)  # the master stops its workers and waits
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=15)
        if leads_group:
            # Workers outlive a master that died or hung: end the group it led.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
        process.stop()


def wait_for_workers(port: int, workers: int, timeout: float = 20.0) -> None:
    """Return once *workers* different workers have answered (their ``X-Worker``).

    The master listens before its workers are ready; connections made then
    all go to the first worker that boots, and keep-alive keeps them there.
    """
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(seen)} of {workers} gunicorn workers answered")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/", headers={"Connection": "close"})
            response = connection.getresponse()
            response.read()
            worker = response.getheader("X-Worker")
            if worker:
                seen.add(worker)
        except (OSError, http.client.HTTPException):
            time.sleep(0.05)
        finally:
            connection.close()


# -- the filler process --------------------------------------------------------


Writer = Callable[[dict[str, bytes]], object]


def _writer(kind: str, port: int) -> tuple[Writer, Callable[[], int]]:
    """A function that sets a batch of values, and one that reads the eviction count."""
    if kind == "memcached":
        memcached = _memcached(port, 1.0)
        return memcached.set_many, lambda: int(memcached.stats()[b"evictions"])
    client = _redis(port, 1.0)
    return client.mset, lambda: int(client.info("stats")["evicted_keys"])


def fill(kind: str, port: int, rate: int) -> None:
    """Write junk until the server evicts, then *rate* values a second, until terminated.

    Values go in batches of :data:`FILL_BATCH`, one round trip each, so the
    filler costs the machine little besides the server's own work. Nothing
    needs cleaning up, so SIGTERM is left to end the process at once.
    """
    write, evictions = _writer(kind, port)
    rng = random.Random(port)
    junk = os.urandom(JUNK_SIZES[1])
    count = 0

    def write_batch() -> None:
        nonlocal count
        batch = {}
        for _ in range(FILL_BATCH):
            count += 1
            batch[f"junk:{count}"] = junk[: rng.randint(*JUNK_SIZES)]
        try:
            write(batch)
        except Exception:
            time.sleep(0.05)  # a busy or failing server: keep trying until terminated

    start = evictions()
    while evictions() == start:
        write_batch()
    next_at = time.monotonic()
    while True:
        write_batch()
        next_at += FILL_BATCH / rate
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "fill":
        sys.exit("usage: python -m benchmarks.faults_servers fill memcached|redis PORT RATE")
    fill(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
