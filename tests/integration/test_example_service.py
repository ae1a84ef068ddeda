"""examples/cpu_service.py, run as a real HTTP service in a subprocess.

Each test starts the service (``--port 0``, the port read from its stdout), talks to it with
aiohttp's client, and stops it with a signal in teardown: the service must exit 0 and no
process of its group (the fork server, the workers) may survive it, whatever the test did.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp  # in the dev extra: a missing one fails loudly, as the other extras do
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "cpu_service.py"
MiB = 1024 * 1024
T = TypeVar("T")


def expected_primes(n: int) -> int:
    """Primes below ``n``, by a slicing sieve (not the service's algorithm)."""
    if n < 3:
        return 0
    sieve = bytearray([1]) * n
    sieve[0] = sieve[1] = 0
    for i in range(2, int(n**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, n, i)))
    return sum(sieve)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid`` (zombies are not alive)."""
    out = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc.pid)
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    return out


class Service:
    """One running ``cpu_service.py`` subprocess (its own session and process group)."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--host", "127.0.0.1", "--port", "0", *args],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        self.worker_pids: set[int] = set()
        self.exit_code: int | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        # Drain stdout for the service's whole life, so that it can never block on it.
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self.base_url = self._wait_listening(timeout=30.0)

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._lines.put(raw.decode(errors="replace").rstrip("\n"))
        self._lines.put(None)

    def _wait_listening(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(left, 0.0))
            except queue.Empty:
                raise AssertionError(f"no 'listening on' line within {timeout:g}s") from None
            if line is None:
                raise AssertionError(f"the service exited before listening:\n{self.log()}")
            if line.startswith("listening on "):
                return line.removeprefix("listening on ").strip()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def url(self, path: str) -> str:
        return self.base_url + path

    def note(self, stats: dict[str, Any]) -> dict[str, Any]:
        """Remember every worker pid a /stats body shows (teardown checks them all)."""
        self.worker_pids.update(w["pid"] for w in stats["workers"] if w["pid"] is not None)
        return stats

    async def stats(self, client: Any) -> dict[str, Any]:
        async with client.get(self.url("/stats")) as resp:
            assert resp.status == 200
            body: dict[str, Any] = await resp.json()
        return self.note(body)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop the service with ``sig``; assert it exited 0 and left no process behind.

        Whatever fails, the whole process group is killed before this returns.
        """
        if self.exit_code is not None:
            return
        pgid = self.proc.pid
        try:
            if self.proc.poll() is None:
                try:  # a last look at the workers, so that none can hide
                    with urllib.request.urlopen(self.url("/stats"), timeout=2) as resp:
                        self.note(json.load(resp))
                except OSError:
                    pass
                self.proc.send_signal(sig)
            try:
                self.exit_code = self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"the service ignored {sig.name}:\n{self.log()}") from None
            deadline = time.monotonic() + 5.0
            while True:
                left_pids = [p for p in self.worker_pids if _alive(p)]
                left_group = _group_members(pgid)
                if not (left_pids or left_group) or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert not left_pids, f"workers {left_pids} survived the service"
            assert not left_group, f"processes {left_group} of the service's group survived"
            assert self.exit_code == 0, f"exit code {self.exit_code}:\n{self.log()}"
        finally:
            self._kill_everything(pgid)
            self._log.close()

    def _kill_everything(self, pgid: int) -> None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for pid in self.worker_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        if self.exit_code is None:
            self.exit_code = self.proc.returncode
        self._reader.join(timeout=5)  # EOF once every holder of the pipe is gone
        if not self._reader.is_alive():
            assert self.proc.stdout is not None
            self.proc.stdout.close()


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """``start_service(*args)``: a running service; stopped (and checked) in teardown."""
    started: list[Service] = []

    def start(*args: str) -> Service:
        svc = Service(list(args), tmp_path / f"service{len(started)}.log")
        started.append(svc)
        return svc

    yield start
    errors = []
    for svc in started:
        try:
            svc.stop()
        except AssertionError as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def service(start_service: Callable[..., Service]) -> Service:
    """The service as the README runs it: 2 workers, 300 MiB per worker."""
    return start_service("--procs", "2", "--max-rss", "300MiB")


async def wait_stats(
    svc: Service,
    client: Any,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float,
    what: str,
) -> dict[str, Any]:
    """Poll /stats until ``predicate`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        stats = await svc.stats(client)
        if predicate(stats):
            return stats
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout:g}s; last stats: {stats}")
        await asyncio.sleep(0.05)


def busy_pids(stats: dict[str, Any]) -> set[int]:
    return {w["pid"] for w in stats["workers"] if w["state"] == "busy" and w["current"]}


async def cancelled(request: asyncio.Future[Any]) -> None:
    """Cancel a client's request and wait until it is."""
    request.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await request


@contextlib.asynccontextmanager
async def a_client_that_goes_away(svc: Service, client: Any) -> AsyncIterator[None]:
    """Another client's ``/burn`` keeps a worker busy (waited for) while the block runs;
    then that client goes away: its request is cancelled and its session closed."""
    burner = aiohttp.ClientSession()
    try:
        request = asyncio.ensure_future(burner.get(svc.url("/burn"), params={"seconds": "30"}))
        try:
            await wait_stats(svc, client, some_busy, 10.0, "a busy worker")
            yield
        finally:
            await cancelled(request)
    finally:
        await burner.close()


def all_idle(stats: dict[str, Any]) -> bool:
    return all(w["state"] == "idle" for w in stats["workers"])


def some_busy(stats: dict[str, Any]) -> bool:
    return bool(busy_pids(stats))


async def get_primes(svc: Service, client: Any, n: int) -> dict[str, Any]:
    async with client.get(svc.url("/primes"), params={"n": str(n)}) as resp:
        body: dict[str, Any] = await resp.json()
        assert resp.status == 200, body
    assert body["n"] == n
    assert body["primes"] == expected_primes(n)
    return body


@pytest.mark.timeout(60)
def test_concurrent_requests_are_served_by_several_workers(service: Service) -> None:
    ns = [300_000 + 7_919 * i for i in range(6)]

    async def scenario() -> None:
        async with aiohttp.ClientSession() as client:
            await wait_stats(service, client, all_idle, 10.0, "two idle workers")
            bodies = await asyncio.gather(*(get_primes(service, client, n) for n in ns))
            stats = await service.stats(client)
        service.worker_pids.update(b["worker_pid"] for b in bodies)
        assert len({b["task_id"] for b in bodies}) == len(ns)
        assert len({b["worker_pid"] for b in bodies}) > 1, bodies
        assert stats["completed"] >= len(ns)
        assert stats["limits"]["max_rss"] == 300 * MiB
        assert len(stats["workers"]) == 2
        for worker in stats["workers"]:
            assert {"pid", "state", "current", "tasks_done", "rss"} <= worker.keys()

    run(scenario())


@pytest.mark.timeout(60)
def test_client_disconnect_cancels_the_task_and_frees_its_worker(service: Service) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as client:
            await wait_stats(service, client, all_idle, 10.0, "two idle workers")
            burner = aiohttp.ClientSession()
            try:
                request = asyncio.ensure_future(
                    burner.get(service.url("/burn"), params={"seconds": "30"})
                )
                stats = await wait_stats(service, client, some_busy, 10.0, "a busy worker")
                (pid,) = busy_pids(stats)
                assert not request.done()
                await cancelled(request)  # the client gives up: its connection is closed
            finally:
                await burner.close()
            t0 = time.monotonic()
            await wait_stats(
                service,
                client,
                lambda s: pid not in busy_pids(s) and s["running"] == 0,
                2.0,
                f"worker {pid} freed",
            )
            assert time.monotonic() - t0 < 2.0
            # (A running sync attempt is stopped by killing its worker, which is replaced.)
            await get_primes(service, client, 50_000)

    run(scenario())


@pytest.mark.timeout(60)
def test_memory_cap_answers_507_and_the_service_keeps_serving(service: Service) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as client:
            async with client.get(service.url("/alloc"), params={"mb": "500"}) as resp:
                body = await resp.json()
                assert resp.status == 507, body
            assert body["error"] == "memory_limit"
            assert body["limit"] == 300 * MiB
            assert body["rss"] > body["limit"]
            # Under the cap, the same endpoint works.
            async with client.get(service.url("/alloc"), params={"mb": "20"}) as resp:
                small = await resp.json()
                assert resp.status == 200, small
            assert small["mb"] == 20
            await get_primes(service, client, 100_000)
            stats = await service.stats(client)
            assert sum(w["restarts"] for w in stats["workers"]) >= 1
            assert stats["memory_exceeded"] == 1  # the 500 MiB request's attempt
            assert (stats["succeeded"], stats["failed"], stats["cancelled"]) == (2, 1, 0)

    run(scenario())


@pytest.mark.timeout(60)
def test_task_timeout_answers_504_and_the_service_keeps_serving(service: Service) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as client:
            t0 = time.monotonic()
            params = {"seconds": "20", "timeout": "0.5"}
            async with client.get(service.url("/burn"), params=params) as resp:
                body = await resp.json()
                assert resp.status == 504, body
            assert time.monotonic() - t0 < 10
            assert body["error"] == "timeout"
            assert body["timeout"] == 0.5
            await get_primes(service, client, 100_000)

    run(scenario())


def metric_families(text: str) -> dict[str, Any]:
    """The families of a /metrics body, parsed by prometheus_client (by name; a counter's
    name without its ``_total``)."""
    from prometheus_client import parser

    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def sample(family: Any, name: str, **labels: str) -> float:
    found = [s.value for s in family.samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, family.samples)
    return float(found[0])


@pytest.mark.timeout(60)
def test_stats_count_each_outcome_and_metrics_serve_them(service: Service) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as client:
            await wait_stats(service, client, all_idle, 10.0, "two idle workers")
            await get_primes(service, client, 10_000)
            await get_primes(service, client, 20_000)
            params = {"seconds": "20", "timeout": "0.3"}
            async with client.get(service.url("/burn"), params=params) as resp:
                assert resp.status == 504
            async with a_client_that_goes_away(service, client):  # its task is cancelled
                pass
            stats = await wait_stats(
                service,
                client,
                lambda s: s["cancelled"] == 1 and s["running"] == 0,
                10.0,
                "the cancellation counted",
            )
            # cancelled work is not folded into success: each outcome has its counter
            assert (stats["succeeded"], stats["failed"], stats["cancelled"]) == (2, 1, 1)
            assert stats["completed"] == 4 == stats["succeeded"] + stats["failed"] + 1
            assert (stats["timeouts"], stats["crashes"], stats["retries"]) == (1, 0, 0)
            assert stats["memory_exceeded"] == 0

            async with client.get(service.url("/metrics")) as resp:
                assert resp.status == 200
                content_type = resp.headers["Content-Type"]
                text = await resp.text()
            assert content_type.startswith("text/plain; version=0.0.4")
            found = metric_families(text)
            tasks = found["osiiso_mp_tasks"]
            assert tasks.type == "counter"
            for status in ("succeeded", "failed", "cancelled"):
                got = sample(tasks, "osiiso_mp_tasks_total", status=status)
                assert got == stats[status]
            assert sample(found["osiiso_mp_timeouts"], "osiiso_mp_timeouts_total") == 1
            assert found["osiiso_mp_tasks_pending"].type == "gauge"
            assert sample(found["osiiso_mp_tasks_pending"], "osiiso_mp_tasks_pending") == 0
            workers = found["osiiso_mp_workers"]
            assert sum(s.value for s in workers.samples) == 2
            rss = found["osiiso_mp_worker_rss_bytes"]
            assert {s.labels["worker"] for s in rss.samples} == {"0", "1"}
            assert any(s.value > 1 << 20 for s in rss.samples)

    run(scenario())


BAD_QUERIES = [
    "/primes",
    "/primes?n=abc",
    "/primes?n=-5",
    "/primes?n=1e30",
    "/primes?n=10&timeout=0",
    "/primes?n=10&timeout=100000",
    "/burn?seconds=nan",
    "/burn?seconds=-1",
    "/alloc?mb=99999999",
    "/alloc?mb=1&hold=inf",
]


@pytest.mark.timeout(60)
def test_bad_input_answers_400(service: Service) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as client:
            for path in BAD_QUERIES:
                async with client.get(service.url(path)) as resp:
                    body = await resp.json()
                    assert resp.status == 400, (path, body)
                assert body["error"] == "bad_request", path
                assert body["detail"], path
            stats = await service.stats(client)
            assert stats["completed"] == 0  # nothing reached a worker

    run(scenario())


@pytest.mark.timeout(60)
def test_a_full_queue_answers_503(start_service: Callable[..., Service]) -> None:
    svc = start_service("--procs", "1", "--max-pending", "1")

    async def scenario() -> None:
        async with aiohttp.ClientSession() as client:
            async with a_client_that_goes_away(svc, client):
                async with client.get(svc.url("/primes"), params={"n": "1000"}) as resp:
                    body = await resp.json()
                    assert resp.status == 503, body
                    assert resp.headers["Retry-After"]
                assert body["error"] == "queue_full"
            # The cancelled request gave its slot back.
            deadline = time.monotonic() + 5.0
            while True:
                async with client.get(svc.url("/primes"), params={"n": "1000"}) as resp:
                    if resp.status == 200:
                        assert (await resp.json())["primes"] == 168
                        break
                    assert resp.status == 503
                assert time.monotonic() < deadline, "the slot was never given back"
                await asyncio.sleep(0.05)

    run(scenario())


@pytest.mark.timeout(60)
def test_sigint_stops_the_service_cleanly(start_service: Callable[..., Service]) -> None:
    svc = start_service("--procs", "2")

    async def scenario() -> None:
        async with aiohttp.ClientSession() as client:
            await get_primes(svc, client, 10_000)
            await svc.stats(client)

    run(scenario())
    assert svc.worker_pids
    svc.stop(signal.SIGINT)  # asserts exit 0 and no worker left
    assert svc.exit_code == 0
