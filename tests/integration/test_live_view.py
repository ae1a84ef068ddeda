"""``progress="live"`` against real workers: in a console, one line redrawn while the run
goes, with the pool's figures (busy workers, queue, memory) and the failures so far; in a
real Jupyter kernel, one HTML block updated in place that stays as the run's final state.
"""

from __future__ import annotations

import asyncio
import io
import pathlib
import time

import pytest
from notebook_support import run_cells, stream

from osiiso_mp import AsyncExecutor, Executor, pmap
from osiiso_mp._progress import progress_tracker


def nap(i: int) -> int:
    time.sleep(0.03)
    if i % 20 == 7:
        raise ValueError(f"bad input {i}")
    return i


def frames(text: str) -> list[str]:
    return [f.rstrip() for f in text.replace("\n", "\r").split("\r") if f.strip()]


@pytest.mark.timeout(60)
def test_the_console_line_is_redrawn_while_the_run_goes() -> None:
    out = io.StringIO()
    with Executor(procs=2) as ex:
        tracker = progress_tracker("live", desc="osiiso_mp run", file=out, pool=ex.stats)
        assert tracker is not None and tracker.kind == "live"
        futures = [ex.submit(nap, i) for i in range(60)]  # about a second on two workers
        tracker.track_all(futures, last=True)
        for fut in futures:
            fut.exception(timeout=30)
        tracker.close()
    drawn = frames(out.getvalue())
    assert len(drawn) >= 4, drawn  # redrawn a few times a second, not only at the end
    during = [f for f in drawn[1:-1] if " busy 2/2 " in f and " queue " in f]
    assert during, drawn  # mid-run frames show both workers at work
    assert drawn[-1].startswith("osiiso_mp run: |################| 60/60 3 failed ")
    assert " busy 0/2 " in drawn[-1] and "tasks/s" in drawn[-1]
    assert out.getvalue().endswith("\n") and out.getvalue().count("\n") == 1


@pytest.mark.timeout(60)
def test_run_map_and_pmap_draw_the_live_line_with_the_pools_figures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with Executor(procs=2) as ex:
        for i in range(6):
            ex.submit(nap, i)
        summary = ex.run(progress="live")
        assert summary.total_submitted == 6
        assert list(ex.map(abs, range(-5, 5), progress="live")) == [abs(i) for i in range(-5, 5)]
    assert pmap(abs, [-1, -2], procs=1, progress="live") == [1, 2]
    lines = [frames(line)[-1] for line in capsys.readouterr().err.split("\n") if line.strip()]
    assert len(lines) == 3, lines
    assert lines[0].startswith("osiiso_mp run: |################| 6/6 ") and " busy " in lines[0]
    assert lines[1].startswith("osiiso_mp map: |################| 10/10 ") and "/2 " in lines[1]
    assert lines[2].startswith("osiiso_mp pmap: |################| 2/2 ") and "/1 " in lines[2]


@pytest.mark.timeout(60)
def test_the_async_map_draws_it_too(capsys: pytest.CaptureFixture[str]) -> None:
    async def main() -> list[int]:
        async with AsyncExecutor(procs=1) as ex:
            return [v async for v in ex.map(abs, range(-3, 0), progress="live")]

    assert asyncio.run(main()) == [3, 2, 1]
    (line,) = [line for line in capsys.readouterr().err.split("\n") if line.strip()]
    assert frames(line)[-1].startswith("osiiso_mp map: |################| 3/3 ")


CELL = """
import time
from osiiso_mp import Executor

def nap(i):
    time.sleep(0.03)
    if i % 20 == 7:
        raise ValueError(f"bad input {i}")
    return i

with Executor(procs=2) as ex:
    for i in range(40):
        ex.options(name=f"nap-{i}").submit(nap, i)
    summary = ex.run(progress="live")
print("done", summary.succeeded, summary.failed)
"""


@pytest.mark.timeout(120)
def test_in_a_notebook_it_is_one_html_block_that_keeps_the_final_state(
    tmp_path: pathlib.Path,
) -> None:
    (cell,) = run_cells([CELL], tmp_path)
    stdout = stream(cell, "stdout")
    assert "done 38 2" in stdout
    stderr = [o for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"]
    assert not stderr, stderr  # no console line in a notebook
    blocks = [o for o in cell.outputs if o.output_type == "display_data"]
    assert len(blocks) == 1, cell.outputs  # updated in place, never appended
    html = blocks[0].data["text/html"]
    assert 'class="osiiso-mp-live"' in html
    text = " ".join(html.replace("&middot;", "·").split())
    for fact in ("40/40 done", "38 ok", "2 failed", "finished", "workers: 0 of 2 busy"):
        assert fact in text, (fact, html)
    assert "last failure:" in html and "ValueError: bad input 27 (nap-27)" in html
    assert html.count("<tr>") == 3  # a header and the two workers
    assert blocks[0].data["text/plain"].startswith("osiiso_mp run: |################| 40/40 ")
