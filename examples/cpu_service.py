"""A resource-capped async HTTP service that offloads CPU-bound work to ``osiiso_mp``.

The aiohttp event loop only parses requests and writes JSON; every CPU-heavy step runs in
one :class:`osiiso_mp.AsyncExecutor` shared by all requests, created when the app starts
and shut down when it stops. The executor caps what the service may take from the machine:

- ``--procs`` worker processes (CPU),
- ``--max-rss`` resident memory per worker: a worker above it is killed and replaced, and
  its request gets ``507`` with the figures,
- ``--max-pending`` unfinished tasks: past it a request gets ``503`` at once (or, with
  ``--park``, waits for room without blocking the loop),
- ``--task-timeout`` seconds per task (a request may ask for less with ``?timeout=``): past
  it the worker is killed and replaced, and the request gets ``504``.

A client that disconnects cancels its task: the server runs with
``handler_cancellation=True``, so aiohttp cancels the handler, which cancels the
``await ex.submit(...)``, which cancels the task and kills the worker of a running attempt.

Endpoints (JSON)::

    GET /primes?n=N        primes below N, counted in a worker (pure Python)
    GET /burn?seconds=S    burn CPU in a worker for S seconds
    GET /alloc?mb=M        allocate and touch M MiB in a worker (hold it ``hold`` seconds)
    GET /stats             the executor's live stats: workers, pending, running, tasks
                           ended by status (succeeded, failed, cancelled), timeouts, ...
    GET /metrics           the same in the Prometheus text format, for a scraper

Run it::

    python examples/cpu_service.py --port 8080 --procs 2 --max-rss 300MiB
    curl 'http://127.0.0.1:8080/primes?n=1000000'

With ``--port 0`` the system picks a free port; the first line on stdout says which
(``listening on http://HOST:PORT``). SIGINT and SIGTERM stop it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import math
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import psutil
from aiohttp import web

from osiiso_mp import (
    AsyncExecutor,
    ClosedError,
    MemoryLimitError,
    QueueFullError,
    TaskTimeoutError,
    WorkerCrashedError,
)

log = logging.getLogger("cpu_service")

MiB = 1024 * 1024
MAX_N = 20_000_000  # /primes: largest n (a few seconds of pure Python)
MAX_BURN = 600.0  # /burn: most seconds
MAX_ALLOC_MB = 4096  # /alloc: most MiB (keep a typo from swapping the machine)
MAX_HOLD = 10.0  # /alloc: most seconds to hold the memory


# -- the work (runs in the workers) --------------------------------------------------------


def count_primes(n: int) -> tuple[int, int]:
    """Count the primes below ``n`` with a plain-Python sieve; ``(count, worker pid)``."""
    if n < 3:
        return 0, os.getpid()
    sieve = bytearray([1]) * n
    sieve[0] = sieve[1] = 0
    count = 0
    for i in range(2, n):
        if sieve[i]:
            count += 1
            for j in range(i * i, n, i):  # a Python loop on purpose: this is the CPU work
                sieve[j] = 0
    return count, os.getpid()


def burn(seconds: float) -> tuple[int, int]:
    """Spin the CPU for ``seconds``; ``(loop iterations, worker pid)``."""
    end = time.perf_counter() + seconds
    spins = 0
    while time.perf_counter() < end:
        spins += 1
    return spins, os.getpid()


def allocate(mb: int, hold: float) -> tuple[int, int]:
    """Allocate ``mb`` MiB, touch every page, keep it ``hold`` seconds;
    ``(resident bytes while holding it, worker pid)``."""
    buf = bytearray(mb * MiB)
    pages = range(0, len(buf), 4096)
    buf[::4096] = b"\x01" * len(pages)  # touch each page so that it is really resident
    rss = int(psutil.Process().memory_info().rss)
    time.sleep(hold)
    del buf
    return rss, os.getpid()


# -- the app --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the command line configures."""

    procs: int = 2
    max_rss: str | None = "1GiB"
    max_pending: int = 32
    park: bool = False
    task_timeout: float = 30.0


SETTINGS = web.AppKey("settings", Settings)
EXECUTOR = web.AppKey("executor", AsyncExecutor)


class StartupError(Exception):
    """The service could not start (a bad setting, an address in use)."""


class BadQuery(ValueError):
    """A query parameter is missing or out of range (answered with 400)."""


def _json_error(status: int, error: str, **fields: Any) -> web.Response:
    return web.json_response({"error": error, **fields}, status=status)


def _number(
    query: Mapping[str, str],
    name: str,
    kind: Callable[[str], float],
    *,
    low: float,
    high: float,
    default: float | None = None,
) -> float:
    """Parse query parameter ``name`` with ``kind`` and check ``low <= value <= high``."""
    raw = query.get(name)
    if raw is None:
        if default is None:
            raise BadQuery(f"missing query parameter {name!r}")
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise BadQuery(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise BadQuery(f"{name} must be between {low:g} and {high:g}, got {raw!r}")
    return value


def _task_timeout(request: web.Request) -> float:
    """The request's task timeout: ``?timeout=`` if given, never above the server's."""
    cap = request.app[SETTINGS].task_timeout
    return _number(request.query, "timeout", float, low=0.001, high=cap, default=cap)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors_to_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map the executor's errors (and bad queries) to JSON responses."""
    try:
        return await handler(request)
    except BadQuery as exc:
        return _json_error(400, "bad_request", detail=str(exc))
    except MemoryLimitError as exc:
        return _json_error(
            507, "memory_limit", limit=exc.limit, rss=exc.rss, task_id=exc.task_id, detail=str(exc)
        )
    except TaskTimeoutError as exc:
        return _json_error(
            504, "timeout", timeout=exc.timeout, task_id=exc.task_id, detail=str(exc)
        )
    except QueueFullError as exc:
        response = _json_error(503, "queue_full", detail=str(exc))
        response.headers["Retry-After"] = "1"
        return response
    except ClosedError as exc:
        return _json_error(503, "shutting_down", detail=str(exc))
    except WorkerCrashedError as exc:
        return _json_error(
            502, "worker_crashed", exit_code=exc.exit_code, task_id=exc.task_id, detail=str(exc)
        )
    except asyncio.CancelledError:
        log.info("%s %s: client went away, its task was cancelled", request.method, request.path)
        raise


async def primes(request: web.Request) -> web.Response:
    """``GET /primes?n=N``: the number of primes below ``N``."""
    n = int(_number(request.query, "n", int, low=0, high=MAX_N))
    ex = request.app[EXECUTOR].options(timeout=_task_timeout(request))
    fut = ex.submit(count_primes, n)
    count, pid = await fut
    return web.json_response({"n": n, "primes": count, "task_id": fut.task_id, "worker_pid": pid})


async def burn_cpu(request: web.Request) -> web.Response:
    """``GET /burn?seconds=S``: keep one worker busy for ``S`` seconds."""
    seconds = _number(request.query, "seconds", float, low=0.0, high=MAX_BURN)
    ex = request.app[EXECUTOR].options(timeout=_task_timeout(request))
    fut = ex.submit(burn, seconds)
    spins, pid = await fut
    return web.json_response(
        {"seconds": seconds, "spins": spins, "task_id": fut.task_id, "worker_pid": pid}
    )


async def alloc(request: web.Request) -> web.Response:
    """``GET /alloc?mb=M&hold=H``: allocate ``M`` MiB in a worker and hold it ``H`` s."""
    mb = int(_number(request.query, "mb", int, low=0, high=MAX_ALLOC_MB))
    hold = _number(request.query, "hold", float, low=0.0, high=MAX_HOLD, default=0.5)
    ex = request.app[EXECUTOR].options(timeout=_task_timeout(request))
    fut = ex.submit(allocate, mb, hold)
    rss, pid = await fut
    return web.json_response({"mb": mb, "rss": rss, "task_id": fut.task_id, "worker_pid": pid})


async def stats(request: web.Request) -> web.Response:
    """``GET /stats``: the executor's live snapshot (workers, pending, running, tasks
    ended by status, attempts timed out, crashed or killed for memory, retries) and the
    service's limits. ``completed`` counts every task that ended, cancelled ones too:
    ``succeeded``, ``failed`` and ``cancelled`` split it."""
    ex = request.app[EXECUTOR]
    body = dataclasses.asdict(ex.stats())
    config = ex.config
    body["limits"] = {
        "procs": ex.procs,
        "max_rss": config.max_rss,
        "max_pending": config.max_pending,
        "task_timeout": request.app[SETTINGS].task_timeout,
    }
    return web.json_response(body)


PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: the executor's live snapshot in the Prometheus text format
    (``PoolStats.to_prometheus``): tasks by status, retries, timeouts, crashes and memory
    kills as counters; the queue, running tasks and workers by state as gauges; per worker
    its RSS, CPU and restarts."""
    text = request.app[EXECUTOR].stats().to_prometheus()
    return web.Response(body=text.encode(), headers={"Content-Type": PROMETHEUS_TEXT})


async def executor_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the shared executor with the app, and stop it (no worker left) after."""
    settings = app[SETTINGS]
    ex = AsyncExecutor(
        procs=settings.procs,
        max_rss=settings.max_rss,
        max_pending=settings.max_pending,
        submit_timeout=None if settings.park else 0,
    )
    app[EXECUTOR] = ex
    log.info("executor started: %r", ex)
    try:
        yield
    finally:
        # By now aiohttp has finished or cancelled every handler (and so every task):
        # nothing is left to drain, so stop the workers at once.
        await ex.shutdown(cancel_futures=True, kill=True)
        log.info("executor shut down")


def make_app(settings: Settings) -> web.Application:
    """The aiohttp application; its executor starts in ``cleanup_ctx``."""
    app = web.Application(middlewares=[errors_to_json])
    app[SETTINGS] = settings
    app.cleanup_ctx.append(executor_ctx)
    app.router.add_get("/primes", primes)
    app.router.add_get("/burn", burn_cpu)
    app.router.add_get("/alloc", alloc)
    app.router.add_get("/stats", stats)
    app.router.add_get("/metrics", metrics)
    return app


async def serve(host: str, port: int, settings: Settings, shutdown_timeout: float) -> None:
    """Serve until SIGINT or SIGTERM, then stop the site and the executor."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # handler_cancellation=True: a client disconnect cancels its handler (aiohttp >= 3.9
    # leaves handlers running by default), and so its task.
    runner = web.AppRunner(
        make_app(settings), handler_cancellation=True, shutdown_timeout=shutdown_timeout
    )
    try:
        await runner.setup()  # starts the executor: a bad --max-rss, --procs... raises here
    except (TypeError, ValueError) as exc:
        await runner.cleanup()
        raise StartupError(str(exc)) from exc
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise StartupError(f"cannot listen on {host}:{port}: {exc}") from exc
        for address in runner.addresses:
            bound_host, bound_port = address[0], address[1]
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            print(f"listening on http://{shown}:{bound_port}", flush=True)
        await stop.wait()
        log.info("stopping")
    finally:
        await runner.cleanup()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one (8080)")
    parser.add_argument("--procs", type=int, default=2, help="worker processes (2)")
    parser.add_argument(
        "--max-rss",
        default="1GiB",
        help="memory cap per worker: bytes or a size like 300MiB; 'none' for no cap (1GiB)",
    )
    parser.add_argument(
        "--max-pending", type=int, default=32, help="most unfinished tasks at once (32)"
    )
    parser.add_argument(
        "--park",
        action="store_true",
        help="past --max-pending, let requests wait for room instead of answering 503",
    )
    parser.add_argument(
        "--task-timeout",
        type=float,
        default=30.0,
        help="seconds per task, and the most a request may ask for with ?timeout= (30)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=5.0,
        help="seconds in-flight requests get to finish on SIGTERM before cancellation (5)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level on stderr (INFO)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve; the exit status."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    max_rss = None if args.max_rss.lower() in ("none", "") else args.max_rss
    settings = Settings(
        procs=args.procs,
        max_rss=max_rss,
        max_pending=args.max_pending,
        park=args.park,
        task_timeout=args.task_timeout,
    )
    try:
        asyncio.run(serve(args.host, args.port, settings, args.shutdown_timeout))
    except StartupError as exc:
        print(f"cpu_service: error: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
