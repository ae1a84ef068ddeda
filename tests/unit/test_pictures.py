"""The summary's pictures and grouped failures, on records built by hand (no processes).

What is checked is what a reader sees: every text has a colour that is not the page's
default black, the pictures scale, ticks are round, a microsecond crash is a visible mark, a
20,000-attempt run stays small, and 2,000 failures read in tens of lines.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from osiiso_mp import _failure_groups, _summary
from osiiso_mp._errors import RemoteError, TaskTimeoutError
from osiiso_mp._failure_groups import exception_type, group_failures
from osiiso_mp._plots import duration_histogram_svg, utilisation_svg
from osiiso_mp._render import MAX_ROWS
from osiiso_mp._results import Attempt, Outcome, Status, TaskResult
from osiiso_mp._summary import RunSummary
from osiiso_mp._svgkit import INK, OUTCOME_COLOURS, duration_text, nice_step, ticks
from osiiso_mp._timeline import AGGREGATE_ABOVE, MIN_BAR

pytestmark = pytest.mark.timeout(60)

NS = "{http://www.w3.org/2000/svg}"


def record(
    i: int,
    *,
    start: float = 100.0,
    duration: float = 0.01,
    worker: int = 0,
    outcome: Outcome = "succeeded",
    exception: BaseException | None = None,
    name: str = "job",
) -> TaskResult:
    """Task ``i``: one attempt on ``worker`` from ``start`` lasting ``duration``."""
    status: Status = "succeeded" if outcome == "succeeded" else "failed"
    message = "" if exception is None else str(exception)
    a = Attempt(1, worker, 4000 + worker, 0.0, start, start + duration, duration, duration,
                1 << 20, 0, outcome, message)  # fmt: skip
    return TaskResult(
        task_id=uuid.UUID(int=i).hex,
        name=name,
        status=status,
        exception=exception,
        attempts=1,
        started_at=start,
        finished_at=start + duration,
        duration=duration,
        message=message,
        attempt_log=(a,),
    )


def big_run(n: int = 20_000, workers: int = 4) -> RunSummary:
    """``n`` back-to-back 1 ms attempts over ``workers`` workers, every 100th a failure, and
    one 20 µs crash."""
    out = []
    for i in range(n):
        w = i % workers
        start = 100.0 + (i // workers) * 0.001
        if i == n // 2:
            out.append(record(i, start=start, duration=2e-5, worker=w, outcome="crashed"))
        elif i % 100 == 7:
            out.append(record(i, start=start, duration=0.001, worker=w, outcome="failed",
                              exception=ValueError(f"bad value {i}")))  # fmt: skip
        else:
            out.append(record(i, start=start, duration=0.001, worker=w))
    return RunSummary(tuple(out), duration=n / workers * 0.001, procs=workers)


def texts(root: ET.Element) -> Iterator[ET.Element]:
    return root.iter(f"{NS}text")


# ------------------------------------------------------------------------------ ticks


@pytest.mark.parametrize(
    ("span", "labels"),
    [
        (0.92, ["0 s", "0.2 s", "0.4 s", "0.6 s", "0.8 s"]),
        (3.2, ["0 s", "0.5 s", "1 s", "1.5 s", "2 s", "2.5 s", "3 s"]),
        (0.0123, ["0 ms", "2 ms", "4 ms", "6 ms", "8 ms", "10 ms", "12 ms"]),
        (4e-5, ["0 µs", "5 µs", "10 µs", "15 µs", "20 µs", "25 µs", "30 µs", "35 µs", "40 µs"]),
        (1234.0, ["0 s", "200 s", "400 s", "600 s", "800 s", "1,000 s", "1,200 s"]),
    ],
)
def test_ticks_are_round(span: float, labels: list[str]) -> None:
    assert [label for _, label in ticks(span)] == labels


def test_nice_steps_are_one_two_or_five_times_a_power_of_ten() -> None:
    for span in (0.0917, 0.183, 1.0, 7.3, 99.0, 12345.0):
        for most in (3, 5, 8):
            step = nice_step(span, most)
            assert span / step <= most + 1e-9
            mantissa = step / 10 ** int(f"{step:e}".split("e")[1])
            assert round(mantissa, 9) in (1, 2, 5), (span, most, step)


def test_durations_read_in_a_unit_that_suits_them() -> None:
    assert [duration_text(s) for s in (2e-5, 0.0123, 3.2, 1234)] == [
        "20 µs",
        "12.3 ms",
        "3.20 s",
        "1,234 s",
    ]


# --------------------------------------------------------------------------- timeline


def test_small_timeline_reads_on_any_theme_and_names_each_task() -> None:
    crash = record(2, start=100.05, duration=3e-6, worker=1, outcome="crashed")
    summary = RunSummary(
        (record(1, duration=0.1), crash, record(3, start=100.2, duration=0.05, worker=1)),
        duration=0.3,
        procs=2,
    )
    svg = summary.timeline(width=600)
    root = ET.fromstring(svg)
    assert root.get("viewBox", "").startswith("0 0 600 ")
    assert root.get("width") == "600" and "max-width:100%" in root.get("style", "")
    assert root.get("role") == "img"
    assert "3 attempts on 2 workers" in root.get("aria-label", "")
    assert root.find(f"{NS}title") is not None and root.find(f"{NS}desc") is not None
    for t in texts(root):  # never the default black, which a dark theme hides
        assert t.get("fill") == INK, ET.tostring(t)
    bars = [e for e in root.iter(f"{NS}rect") if e.get("class") == "attempt"]
    assert len(bars) == 3
    crashed = [b for b in bars if b.get("fill") == OUTCOME_COLOURS["crashed"]]
    assert len(crashed) == 1
    assert float(crashed[0].get("width", "0")) >= MIN_BAR  # 3 µs of a 0.25 s run
    tip = crashed[0].findtext(f"{NS}title") or ""
    assert tip.startswith("job #1 crashed 3µs") and crash.task_id in tip
    legend = " ".join(t.text or "" for t in texts(root))
    assert "succeeded 2" in legend and "crashed 1" in legend
    # failures are drawn after (over) the successes
    assert bars[-1].get("fill") == OUTCOME_COLOURS["crashed"]


def test_large_timeline_is_binned_small_and_still_shows_failures() -> None:
    for many_workers in (big_run(20_000, 64), big_run(100_000, 16)):
        svg = many_workers.timeline()
        assert len(svg) < 100_000
        assert sum(1 for _ in ET.fromstring(svg).iter()) < 1_000
    summary = big_run()
    svg = summary.timeline()
    assert len(svg) < 50_000
    root = ET.fromstring(svg)
    assert sum(1 for _ in root.iter()) < 500
    assert not [e for e in root.iter(f"{NS}rect") if e.get("class") == "attempt"]
    bands = [p for p in root.iter(f"{NS}path") if p.get("class") == "busy"]
    assert bands and all(p.find(f"{NS}title") is not None for p in bands)
    assert len(bands) <= 4 * 3  # one path per worker and outcome, whatever the task count
    (failed,) = [p for p in bands if p.get("fill") == OUTCOME_COLOURS["failed"]]
    assert (failed.findtext(f"{NS}title") or "").startswith("worker 3: 200 failed")
    heights = [float(v) for v in re.findall(r"v([\d.]+)", failed.get("d", ""))]
    assert heights and min(heights) >= 2.0  # 1 failure in 100 is still 2 pixels tall
    marks = [e for e in root.iter(f"{NS}rect") if e.get("class") == "failures"]
    assert [m.get("fill") for m in marks] == [OUTCOME_COLOURS["crashed"]]
    assert float(marks[0].get("width", "0")) >= MIN_BAR
    assert "bins" in "".join(root.itertext())
    for t in texts(root):
        assert t.get("fill")


def test_aggregation_starts_above_the_threshold() -> None:
    just = big_run(AGGREGATE_ABOVE, 2)
    root = ET.fromstring(just.timeline())
    assert sum(e.get("class") == "attempt" for e in root.iter(f"{NS}rect")) == AGGREGATE_ABOVE
    over = big_run(AGGREGATE_ABOVE + 1, 2)
    root = ET.fromstring(over.timeline())
    assert not any(e.get("class") == "attempt" for e in root.iter(f"{NS}rect"))


# ------------------------------------------------------------------------------ plots


def test_plots_are_themed_and_describe_themselves() -> None:
    summary = big_run(3_000)
    for svg in (duration_histogram_svg(summary), utilisation_svg(summary)):
        root = ET.fromstring(svg)
        assert root.get("role") == "img" and root.get("aria-label")
        assert all(t.get("fill") == INK for t in texts(root))
    hist = ET.fromstring(duration_histogram_svg(summary))
    fills = {r.get("fill") for r in hist.iter(f"{NS}rect")}
    assert {OUTCOME_COLOURS["succeeded"], OUTCOME_COLOURS["failed"]} <= fills
    assert OUTCOME_COLOURS["crashed"] in fills  # one crash in 3,000 still shows
    util = ET.fromstring(utilisation_svg(summary))
    labels = [t.text for t in texts(util)]
    assert [f"worker {w}" for w in range(4)] == [s for s in labels if s and s.startswith("work")]
    empty = RunSummary((), duration=0.0)
    for svg in (duration_histogram_svg(empty), utilisation_svg(empty), empty.timeline()):
        assert ET.fromstring(svg).find(f"{NS}title") is not None


def test_html_summary_embeds_pictures_in_the_page_colour() -> None:
    html = big_run(3_000)._repr_html_()
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) == 3  # timeline, durations, utilisation
    for svg in svgs:
        root = ET.fromstring(svg)
        assert root.get("width") == "100%" and "max-width:" in root.get("style", "")
        assert all(t.get("fill") == "currentColor" for t in texts(root))
    assert "#eee" not in html and "#fff" not in html  # no light backgrounds on a dark theme


# --------------------------------------------------------------------------- failures


def many_failures(n: int = 2_000, kinds: int = 3) -> RunSummary:
    """``n`` failures cycling through ``kinds`` exception types, numbers in each message."""
    types = [ValueError, KeyError, RuntimeError, TypeError, OSError, LookupError, ZeroDivisionError,
             AttributeError, IndexError, NameError, EOFError, MemoryError, ArithmeticError,
             BufferError, ImportError]  # fmt: skip
    out = [record(0, name="fine")]
    for i in range(1, n + 1):
        exc = types[i % kinds](f"item {i} rejected")
        out.append(record(i, outcome="failed", exception=exc, name=f"task-{i}"))
    return RunSummary(tuple(out), duration=2.0, procs=2)


def test_two_thousand_failures_read_in_tens_of_lines() -> None:
    report = many_failures().report()
    lines = report.splitlines()
    assert len(lines) < 40, report
    assert "  Failures: 2000 tasks, 3 kinds (by exception type and message)" in lines
    kinds = [ln for ln in lines if ln.startswith("    - ")]
    assert kinds == [  # most common first, ties in order of first appearance
        "    - KeyError: 667 tasks (messages vary), e.g. task-1",
        "    - RuntimeError: 667 tasks (messages vary), e.g. task-2",
        "    - ValueError: 666 tasks (messages vary), e.g. task-3",
    ]
    assert "      'item 1 rejected'" in lines  # the KeyError's example message
    assert lines[-1] == "-" * 40


def test_many_kinds_end_with_and_n_more() -> None:
    report = many_failures(150, 15).report()
    lines = report.splitlines()
    assert len(lines) < 40
    assert sum(ln.startswith("    - ") for ln in lines) == _failure_groups.MAX_KINDS
    assert "    ... and 5 more kinds (50 tasks)" in lines


def test_grouping_starts_above_ten_failures() -> None:
    assert _summary._GROUP_FAILURES_ABOVE == _failure_groups.GROUP_ABOVE == 10
    ten = many_failures(10).report().splitlines()
    assert "  Failures:" in ten and sum(ln.startswith("    - task-") for ln in ten) == 10
    eleven = many_failures(11).report()
    assert "  Failures: 11 tasks, 3 kinds" in eleven and "- task-" not in eleven


def test_kinds_set_aside_the_task_and_numbers_but_not_the_words() -> None:
    ids = [uuid.UUID(int=i).hex for i in (1, 2)]
    crash_a = record(
        1, outcome="crashed", exception=TaskTimeoutError(5, name="job", task_id=ids[0])
    )
    crash_b = record(
        2, outcome="crashed", exception=TaskTimeoutError(7, name="job", task_id=ids[1])
    )
    other = record(3, outcome="failed", exception=ValueError("a different thing"))
    remote = record(4, outcome="failed", exception=RemoteError("pkg.mod.CustomError", "no"))
    groups = group_failures([crash_a, crash_b, other, remote])
    assert [(g.type_name, len(g.records), g.varies) for g in groups] == [
        ("TaskTimeoutError", 2, True),
        ("ValueError", 1, False),
        ("CustomError", 1, False),
    ]
    assert groups[0].example is crash_a
    assert exception_type(record(5, outcome="timed_out")) == "timed_out"


def test_html_failures_are_grouped_bounded_and_short_ided() -> None:
    summary = many_failures()
    html = summary._repr_html_()
    assert len(html) < 120_000
    assert "Failures: 2,000 tasks, 3 kinds" in html
    assert re.search(r"<code>ValueError</code></td><td[^>]*>666</td>", html)
    assert f"... and {2_000 - MAX_ROWS:,} more" in html
    assert "<details><summary" in html and "overflow:auto" in html
    listed = html.split("Failed tasks:", 1)[1].split("</details>", 1)[0]
    rows = re.findall(r"<tr>", listed)
    assert len(rows) <= MAX_ROWS + 2  # the header, the rows, the "and N more" row
    first = summary.errors[0].task_id
    assert f'title="{first}"' in html
    assert html.count(first) == html.count(f'title="{first}"')  # never as wide text
