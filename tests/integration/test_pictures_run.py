"""The summary's pictures and grouped failures for real runs: a 20,000-task batch with
2,000 failures of three kinds and two crashes, and a small run with a crash that lasts
microseconds. The SVGs are parsed and checked for what a reader sees (colours, scaling,
round ticks, visible failures, a bounded size); the text and HTML for bounded length.
"""

from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from osiiso_mp import Executor, RunSummary
from osiiso_mp._render import MAX_ROWS
from osiiso_mp._svgkit import INK, OUTCOME_COLOURS
from osiiso_mp._timeline import MIN_BAR

NS = "{http://www.w3.org/2000/svg}"
N = 20_000
CRASH_AT = (5_003, 15_007)


def job(i: int) -> int:
    """Nothing, except for one task in ten (three kinds of exception) and two crashes."""
    if i in CRASH_AT:
        os._exit(3)
    if i % 10 == 1:
        kind = (ValueError, KeyError, RuntimeError)[i // 10 % 3]
        raise kind(f"item {i} rejected")
    return i


def crash_now() -> None:
    """End the worker at once: an attempt of a few microseconds."""
    os._exit(9)


def quick(i: int) -> int:
    return i


@pytest.fixture(scope="module")
def big() -> Iterator[RunSummary]:
    with Executor(procs=2) as ex:
        for i in range(N):
            ex.submit(job, i)
        summary = ex.run()
    yield summary


@pytest.mark.timeout(120)
def test_twenty_thousand_tasks_make_a_small_readable_timeline(big: RunSummary) -> None:
    assert big.total_submitted == N and big.failed == 2_002
    svg = big.timeline()
    assert len(svg) < 100_000, len(svg)  # the bar-per-attempt one was 4 MB
    root = ET.fromstring(svg)
    assert sum(1 for _ in root.iter()) < 2_000
    assert root.get("viewBox", "").startswith("0 0 900 ")
    assert "max-width:100%" in root.get("style", "")
    assert root.find(f"{NS}title") is not None
    assert root.get("role") == "img" and "20,000 attempts on 2 workers" in root.get(
        "aria-label", ""
    )
    for t in root.iter(f"{NS}text"):
        assert t.get("fill") == INK, ET.tostring(t)
    _check_round_ticks(root)
    # the two crashes, each lasting microseconds, are marks at least MIN_BAR wide
    marks = [e for e in root.iter(f"{NS}rect") if e.get("class") == "failures"]
    assert {m.get("fill") for m in marks} == {OUTCOME_COLOURS["crashed"]}
    assert 1 <= len(marks) <= 2 and all(float(m.get("width", "0")) >= MIN_BAR for m in marks)
    # the failed attempts show in the bands, at least 2 pixels tall
    failed = [
        p
        for p in root.iter(f"{NS}path")
        if p.get("class") == "busy" and p.get("fill") == OUTCOME_COLOURS["failed"]
    ]
    assert len(failed) == 2  # one per worker
    heights = [float(v) for p in failed for v in re.findall(r"v([\d.]+)", p.get("d", ""))]
    assert heights and min(heights) >= 2.0


def _check_round_ticks(root: ET.Element) -> None:
    """The time axis's labels are 0 and multiples of a 1, 2 or 5 x 10^k step, in one unit."""
    labels = [t.text or "" for t in root.iter(f"{NS}text") if t.get("class") == "tick"]
    assert len(labels) >= 3, labels
    parsed = [re.fullmatch(r"([\d,]+(?:\.\d+)?) (s|ms|µs)", label) for label in labels]
    assert all(parsed), labels
    values = [float(m.group(1).replace(",", "")) for m in parsed if m]
    assert len({m.group(2) for m in parsed if m}) == 1, labels
    step = values[1] - values[0]
    assert values[0] == 0
    assert all(math.isclose(v, k * step, abs_tol=1e-9) for k, v in enumerate(values)), labels
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1, 2, 5), labels


@pytest.mark.timeout(120)
def test_two_thousand_failures_are_grouped_in_the_report(big: RunSummary) -> None:
    report = big.report()
    lines = report.splitlines()
    assert len(lines) < 40, report
    assert "  Failures: 2002 tasks, 4 kinds (by exception type and message)" in lines
    kinds = [ln for ln in lines if ln.startswith("    - ")]
    assert [k.split(":")[0] for k in kinds] == [
        "    - ValueError",
        "    - KeyError",
        "    - RuntimeError",
        "    - WorkerCrashedError",
    ]
    assert "    - ValueError: 667 tasks (messages vary), e.g. job" in kinds
    assert "    - KeyError: 667 tasks (messages vary), e.g. job" in kinds
    assert "    - RuntimeError: 666 tasks (messages vary), e.g. job" in kinds
    assert kinds[3].startswith("    - WorkerCrashedError: 2 tasks")
    assert "      item 1 rejected" in lines


@pytest.mark.timeout(120)
def test_the_html_summary_is_bounded(big: RunSummary) -> None:
    html = big._repr_html_()
    assert len(html) < 250_000, len(html)
    assert "Failures: 2,002 tasks, 4 kinds" in html
    assert f"... and {2_002 - MAX_ROWS:,} more" in html
    listed = html.split("Failed tasks:", 1)[1].split("</details>", 1)[0]
    assert listed.count("<tr>") <= MAX_ROWS + 2
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) == 3
    for svg in svgs:
        root = ET.fromstring(svg)
        assert root.get("width") == "100%"
        assert all(t.get("fill") == "currentColor" for t in root.iter(f"{NS}text"))
    first = big.errors[0].task_id
    assert html.count(first) == html.count(f'title="{first}"') >= 1


@pytest.mark.timeout(60)
def test_a_crash_of_a_few_microseconds_is_a_visible_bar() -> None:
    with Executor(procs=2) as ex:
        for i in range(6):
            ex.submit(quick, i)
        ex.options(name="crasher").submit(crash_now)
        ex.submit(quick, 6)
        summary = ex.run()
    (crashed,) = summary.errors
    assert crashed.attempt_log[0].outcome == "crashed"
    root = ET.fromstring(summary.timeline())
    bars = [e for e in root.iter(f"{NS}rect") if e.get("class") == "attempt"]
    assert len(bars) == 8
    (bar,) = [b for b in bars if b.get("data-task-id") == crashed.task_id]
    assert bar.get("fill") == OUTCOME_COLOURS["crashed"]
    assert float(bar.get("width", "0")) >= MIN_BAR
    assert (bar.findtext(f"{NS}title") or "").startswith("crasher #1 crashed")
    legend = "".join(root.itertext())
    assert "crashed 1" in legend and "succeeded 7" in legend
