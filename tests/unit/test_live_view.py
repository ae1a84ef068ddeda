"""The live view's renderings (``progress="live"``), from made-up moments of a run: the
console line and the notebook's HTML block. Pure functions: no process, no clock."""

from __future__ import annotations

import re
from xml.etree import ElementTree

import pytest

from osiiso_mp import PoolStats
from osiiso_mp._progress import ProgressEvent, progress_tracker
from osiiso_mp._progress._live_view import MAX_WORKER_ROWS, LiveView, live_html, live_line
from osiiso_mp._snapshots import WorkerSnapshot

MiB = 1 << 20


def _worker(i: int, state: str = "busy", current: tuple[str, ...] = ("a" * 32,)) -> WorkerSnapshot:
    return WorkerSnapshot(
        worker=i,
        pid=1000 + i,
        state=state,
        current=current if state == "busy" else (),
        tasks_done=10 * i,
        rss=100 * MiB,
        cpu_percent=97.0,
        restarts=0,
    )


def _stats(n: int, busy: int) -> PoolStats:
    workers = tuple(_worker(i, "busy" if i < busy else "idle") for i in range(n))
    return PoolStats(workers=workers, pending=12, running=busy, scheduled=3, completed=40)


def _event(done: int = 40, total: int | None = 100, failed: int = 2) -> ProgressEvent:
    return ProgressEvent(
        done=done,
        total=total,
        succeeded=done - failed,
        failed=failed,
        cancelled=0,
        elapsed=1.25,
    )


def test_the_console_line_has_the_counts_the_pool_and_the_clock() -> None:
    view = LiveView("osiiso_mp run", _event(), 145.2, _stats(2, 2))
    line = live_line(view)
    assert line == (
        "osiiso_mp run: |######          | 40/100 2 failed 145 tasks/s queue 15 busy 2/2 "
        "rss 200.00 MiB 1.2s"
    )
    assert "\n" not in line


def test_the_console_line_before_the_pool_is_seen_and_without_a_total() -> None:
    line = live_line(LiveView("osiiso_mp map", _event(total=None, failed=0), None, None))
    assert line == "osiiso_mp map: 40/? 1.2s"


def _parse(html: str) -> ElementTree.Element:
    # the block is well-formed XHTML apart from entities: map the two it uses
    return ElementTree.fromstring(html.replace("&middot;", "·").replace("&#9679;", "●"))


def test_the_notebook_block_lists_every_worker_and_the_last_failure() -> None:
    failure = "ValueError: bad <input> 7 (score)"
    view = LiveView("osiiso_mp run", _event(), 50.0, _stats(3, 2), failure)
    html = live_html(view)
    root = _parse(html)
    assert root.get("role") == "status"
    assert root.get("aria-label") == "osiiso_mp run: 40/100 done, 2 failed"
    text = " ".join("".join(root.itertext()).split())
    for fact in (
        "40/100 done",
        "38 ok",
        "2 failed",
        "50 tasks/s",
        "queue: 12 waiting, 3 scheduled, 2 running",
        "workers: 2 of 3 busy",
        "RSS 300.00 MiB in all",
        "last failure: ValueError: bad <input> 7 (score)",
    ):
        assert fact in text, (fact, text)
    assert "bad &lt;input&gt;" in html  # escaped
    rows = root.findall(".//tr")
    assert len(rows) == 1 + 3  # a header and a row per worker
    cells = ["".join(td.itertext()).strip() for td in rows[1].findall("td")]
    assert cells[:3] == ["0", "1000", "● busy"]
    assert cells[3] == "aaaaaaaa"  # the task id, cut; whole in the title
    assert rows[1].find(".//code").get("title") == "a" * 32  # type: ignore[union-attr]


def test_text_takes_the_pages_colour_on_light_and_dark_themes() -> None:
    html = live_html(LiveView("osiiso_mp run", _event(), 1.0, _stats(2, 1), "E: x (t)"))
    # no fixed text colour or background anywhere but the outcome marks
    colours = set(re.findall(r"(?<![-\w])color:([^;\"]+)", html))
    assert colours <= {"inherit", "#2e9e44", "#d62728", "#9e9e9e"}, colours
    backgrounds = set(re.findall(r"background:([^;\"]+)", html))
    assert backgrounds <= {"transparent", "rgba(128,128,128,0.25)", "#2e9e44", "#d62728"}


def test_many_workers_are_summed_up_past_the_row_limit() -> None:
    n = MAX_WORKER_ROWS + 5
    root = _parse(live_html(LiveView("run", _event(), None, _stats(n, n - 1))))
    rows = root.findall(".//tr")
    assert len(rows) == 1 + MAX_WORKER_ROWS + 1
    assert "".join(rows[-1].itertext()) == "... and 5 more workers (4 busy)"


def test_the_bar_splits_successes_and_failures() -> None:
    html = live_html(LiveView("run", _event(done=50, total=100, failed=10), None, None))
    assert "width:40.00%;background:#2e9e44" in html
    assert "width:10.00%;background:#d62728" in html


@pytest.mark.parametrize("bad", ["alive", "LIVE", b"live"])
def test_only_the_word_live_asks_for_the_live_view(bad: object) -> None:
    with pytest.raises(TypeError, match='"live"'):
        progress_tracker(bad)  # type: ignore[arg-type]
