"""README's pictures and table excerpt (`make docs-assets`), made from a finished demo run, never by hand.

    python docs/assets/make_assets.py [--demo outputs/demo]

Writes docs/assets/flow.svg (the study's flow), docs/assets/demo-report.png (report.html at 1280 px in
headless Chromium) and replaces README's excerpt of the demo's table (between the `demo-table` markers) with
the first lines of `<demo>/table.md`. Run `make demo` (or `align series recipes/demo/series.yaml`) first.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "docs" / "assets"
README = REPO / "README.md"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
EXCERPT_START, EXCERPT_END = "<!-- demo-table:start", "<!-- demo-table:end -->"

# The flow: (label, x, y) in axis units; the main line left to right, the judge-free measures under it.
MAIN = [("base checkpoints\nscratch / grown", 0.7), ("cpt\n(continued\npretraining)", 2.1), ("SFT\nUltraChat", 3.4),
        ("DPO\nUltraFeedback", 4.7), ("answers\nMT-Bench", 6.0), ("judge\nscores, pairs,\njudge check", 7.3),
        ("report\ntable, report.html", 8.75)]
SIDE = [("base evaluation\nlm-eval (Table 1)", 2.1), ("held-out loss,\npreference accuracy", 4.7)]


def _box(ax, x, y, text, color, width=1.15, height=0.9):
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.04",
                                facecolor=color, edgecolor="#333333", linewidth=1))
    ax.text(x, y, text, ha="center", va="center", fontsize=8.5)


def _arrow(ax, start, end, style="-|>", dashed=False):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=12, color="#333333",
                                 linestyle="--" if dashed else "-", linewidth=1, shrinkA=0, shrinkB=0))


def draw_flow(path: Path) -> None:
    plt.rcParams["svg.fonttype"] = "none"  # text stays text: small, diffable, searchable
    plt.rcParams["svg.hashsalt"] = "align"  # the same drawing gives the same file
    fig, ax = plt.subplots(figsize=(10, 3.1))
    ax.set_xlim(0, 9.5)
    ax.set_ylim(-0.2, 3.1)
    ax.axis("off")
    top, bottom = 2.2, 0.65
    for i, (label, x) in enumerate(MAIN):
        _box(ax, x, top, label, "#dbe9f6" if 0 < i < 6 else "#f2f2f2", width=1.3 if i in (0, 6) else 1.1)
        if i:
            half = {0: 0.65, 6: 0.65}  # the wider end boxes
            _arrow(ax, (MAIN[i - 1][1] + half.get(i - 1, 0.55), top), (x - half.get(i, 0.55), top))
    report_x, report_bottom = MAIN[-1][1], top - 0.45
    for i, (label, x) in enumerate(SIDE):
        _box(ax, x + 0.65, bottom + 0.3, label, "#e3f1df", width=1.6, height=0.7)
        _arrow(ax, (x, report_bottom), (x + 0.3, bottom + 0.65), dashed=True)
        # each measure's own lane into the report, under the boxes, so no line crosses a box
        lane, enter = 0.2 + 0.12 * i, report_x + 0.35 - 0.35 * i
        ax.plot([x + 0.65, x + 0.65, enter, enter], [bottom - 0.05, lane, lane, lane], color="#333333",
                linestyle="--", linewidth=1)
        _arrow(ax, (enter, lane), (enter, report_bottom), dashed=True)
    ax.text(0.05, 3.0, "every model, the same recipe", fontsize=8, color="#555555", va="top")
    ax.text(0.05, -0.12, "judge-free measures (dashed): evidence that does not trust the judge", fontsize=8,
            color="#555555")
    fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)


def excerpt_of(table_md: str) -> str:
    """table.md up to the end of its first table (the warning, if any, the title, header, rule, every row)."""
    lines = table_md.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(header, len(lines)) if not lines[i].startswith("|")), len(lines))
    # the table's own headings become bold lines: README's outline stays README's
    lines = [re.sub(r"^#+ (.*)$", r"**\1**", line) for line in lines[:end]]
    return "\n".join(lines).rstrip() + "\n"


def replace_excerpt(readme: str, excerpt: str, source: str) -> str:
    pattern = re.compile(re.escape(EXCERPT_START) + r".*?" + re.escape(EXCERPT_END), re.S)
    if not pattern.search(readme):
        sys.exit(f"error: README.md has no {EXCERPT_START} ... {EXCERPT_END} markers")
    block = f"{EXCERPT_START} (made by docs/assets/make_assets.py from {source}) -->\n{excerpt}{EXCERPT_END}"
    return pattern.sub(lambda _: block, readme)


def screenshot(report_html: Path, path: Path, width: int = 1280, height: int = 800) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(report_html.resolve().as_uri())
            page.screenshot(path=str(path))
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=REPO / "outputs" / "demo", help="a finished demo's output_dir")
    args = parser.parse_args(argv)
    table, report = args.demo / "table.md", args.demo / "report.html"
    for needed in (table, report):
        if not needed.is_file():
            print(f"error: {needed} is missing: run `make demo` first", file=sys.stderr)
            return 2
    ASSETS.mkdir(parents=True, exist_ok=True)
    draw_flow(ASSETS / "flow.svg")
    screenshot(report, ASSETS / "demo-report.png")
    demo = args.demo.resolve()
    source = f"{demo.relative_to(REPO) if demo.is_relative_to(REPO) else demo}/table.md"
    excerpt = excerpt_of(table.read_text(encoding="utf-8"))
    README.write_text(replace_excerpt(README.read_text(encoding="utf-8"), excerpt, source), encoding="utf-8")
    print(f"wrote {ASSETS / 'flow.svg'}, {ASSETS / 'demo-report.png'} and README's excerpt of {table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
