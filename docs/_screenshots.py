"""The screenshots in the docs, taken by a real headless browser: ``make screenshots``.

What users see, on a light and on a dark theme:

- the quickstart notebook (``examples/quickstart.ipynb``), executed top to bottom by a
  real Jupyter kernel, rendered by nbconvert's JupyterLab template (its light and dark
  themes): the run's live view and summary, then the timeline and the telemetry;
- the live view while a run is going (a real executor, caught mid-run);
- two pages of the docs site (``mkdocs build``), one in its light palette, one in its dark.

Each page is opened by headless Chromium (``chromium --headless --screenshot``) and the
PNG cropped to its content (Pillow). The images land in ``docs/images/`` and are shown on
``docs/gallery.md``. Needs ``chromium`` on the PATH (``apt-get install chromium``) and the
``screenshots`` extra (nbconvert, Pillow), which ``make screenshots`` installs.

    python docs/_screenshots.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import io
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"
WIDTH = 1000
BACKGROUNDS = {"light": "#ffffff", "dark": "#111111"}


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("no chromium on the PATH: apt-get install chromium")


def shoot(page: pathlib.Path, png: pathlib.Path, *, dark: bool, height: int = 3000) -> None:
    """Open ``page`` in headless Chromium, save the window as ``png``, crop it."""
    args = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={WIDTH},{height}",
        f"--screenshot={png}",
    ]
    if dark:
        args.append("--force-dark-mode")  # prefers-color-scheme: dark
    subprocess.run([*args, page.as_uri()], check=True, capture_output=True, timeout=120)
    crop(png)


def crop(png: pathlib.Path, margin: int = 16) -> None:
    """Cut the page's empty bottom (rows of the background colour) off ``png``."""
    from PIL import Image, ImageChops

    with Image.open(png) as image:
        rgb = image.convert("RGB")
    corner = rgb.getpixel((rgb.width - 1, rgb.height - 1))
    background = Image.new("RGB", rgb.size, corner)
    box = ImageChops.difference(rgb, background).getbbox()
    if box is not None:
        bottom = min(rgb.height, box[3] + margin)
        rgb = rgb.crop((0, 0, rgb.width, bottom))
    rgb.save(png, optimize=True)


# ----------------------------------------------------------------------- the notebook


def executed_notebook(workdir: pathlib.Path) -> Any:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    NotebookClient(
        nb,
        kernel_name="python3",
        timeout=120,
        startup_timeout=60,
        resources={"metadata": {"path": str(workdir)}},
    ).execute()
    return nb


def notebook_shots(out: pathlib.Path, workdir: pathlib.Path) -> list[pathlib.Path]:
    """The run (its live view and summary) and the pictures (timeline, telemetry)."""
    import copy

    from nbconvert import HTMLExporter

    nb = executed_notebook(workdir)
    cells = nb.cells

    def code(snippet: str) -> int:
        return next(i for i, c in enumerate(cells) if c.cell_type == "code" and snippet in c.source)

    start, summary = code('progress="live"'), code("summary.errors") - 2
    timeline = code("summary.timeline()")
    parts = {
        "notebook-run": cells[start : summary + 1],  # the batch, then its summary
        "notebook-timeline": cells[timeline - 1 : timeline + 3],  # the timeline, telemetry
    }
    made = []
    for name, chosen in parts.items():
        part = copy.deepcopy(nb)
        part.cells = chosen
        for theme in ("light", "dark"):
            exporter = HTMLExporter(template_name="lab", theme=theme)
            html, _ = exporter.from_notebook_node(part)
            page = workdir / f"{name}-{theme}.html"
            page.write_text(html)
            png = out / f"{name}-{theme}.png"
            shoot(page, png, dark=theme == "dark")
            made.append(png)
    return made


# ----------------------------------------------------------------------- the live view


def live_view_html() -> str:
    """The live view of a real run, caught while both workers are busy."""
    from osiiso_mp import Executor
    from osiiso_mp._progress import progress_tracker
    from osiiso_mp._progress._live import LiveLine

    def step(i: int) -> int:
        time.sleep(0.02)
        if i % 40 == 7:
            raise ValueError(f"bad input {i}")
        return i

    with Executor(procs=2) as ex:
        tracker = progress_tracker("live", desc="osiiso_mp run", file=io.StringIO(), pool=ex.stats)
        assert tracker is not None
        futures = [ex.options(name=f"step-{i}").submit(step, i) for i in range(300)]
        tracker.track_all(futures, last=True)
        time.sleep(2.0)  # a third of the way through
        display = tracker._display
        assert isinstance(display, LiveLine)
        from osiiso_mp._progress._live_view import live_html

        view = display._view(tracker.snapshot())
        html = live_html(view)
        ex.shutdown(cancel_futures=True)
        tracker.close()
    return html


def live_shots(out: pathlib.Path, workdir: pathlib.Path) -> list[pathlib.Path]:
    html = live_view_html()
    made = []
    for theme, (background, text) in {
        "light": ("#ffffff", "#1f1f1f"),
        "dark": ("#111111", "#d4d4d4"),
    }.items():
        page = workdir / f"live-{theme}.html"
        page.write_text(
            f'<html><body style="margin:0;padding:16px;background:{background};'
            f'color:{text};font-family:system-ui,sans-serif">{html}</body></html>'
        )
        png = out / f"live-{theme}.png"
        shoot(page, png, dark=theme == "dark", height=600)
        made.append(png)
    return made


# ----------------------------------------------------------------------- the docs site


def docs_shots(out: pathlib.Path, workdir: pathlib.Path) -> list[pathlib.Path]:
    site = workdir / "site"
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--quiet", "--site-dir", str(site)],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    made = []
    for page, name, theme in (
        ("quickstart", "docs-quickstart", "light"),
        ("guides/summaries", "docs-summaries", "dark"),
    ):
        png = out / f"{name}-{theme}.png"
        shoot(site / page / "index.html", png, dark=theme == "dark", height=1400)
        made.append(png)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp)
        made = [
            *live_shots(args.out, workdir),
            *notebook_shots(args.out, workdir),
            *docs_shots(args.out, workdir),
        ]
    for png in made:
        shown = png.relative_to(ROOT) if png.is_relative_to(ROOT) else png
        print(f"{shown}: {png.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
