"""The handbook builds (issue 33): `mkdocs build --strict` with mkdocs.yml, as `make docs` runs it, so a broken
link or anchor, a missing page, or a page left out of `nav` fails the tests, not a reader."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml
from conftest import REPO


def test_handbook_builds_strict(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file()


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = [next(iter(entry.values())) for entry in config["nav"]]
    pages = sorted(p.name for p in (REPO / "docs").glob("*.md"))
    assert sorted(nav) == pages


def test_readme_links_point_at_files_that_exist():
    """README is not part of the site, so mkdocs does not check it: its links into docs/ are checked here."""
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", (REPO / "README.md").read_text(encoding="utf-8"))
    assert links and not [link for link in links if "://" not in link and not (REPO / link).exists()]
