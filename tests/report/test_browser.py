"""Rendered reports in headless Chromium: no errors, no network, charts drawn, hostile text inert."""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from report_records import (
    IMG_EVIDENCE,
    SCRIPT_TITLE,
    failing_pair,
    hostile_pair,
    make_history,
    passing_pair,
    truth_pair,
    unknown_pair,
)

from harness.report import write_run, write_site

chromium = pytest.importorskip("chromium", reason="tests/report/chromium.py needs websocket-client")
pytestmark = pytest.mark.skipif(
    not chromium.CHROMIUM.exists(), reason=f"{chromium.CHROMIUM} is not installed"
)

ARTIFACTS = Path(__file__).parent / "artifacts"
FACTS = """(() => ({
  title: document.title,
  figures: document.querySelectorAll('figure.chart').length,
  drawn: [...document.querySelectorAll('figure.chart svg')]
           .filter(svg => svg.getBoundingClientRect().width > 300).length,
  nodata: document.querySelectorAll('figure.chart .nodata').length,
  scripts: document.querySelectorAll('script').length,
  images: document.querySelectorAll('img').length,
  text: document.body.innerText,
}))()"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    for pair in (passing_pair(), failing_pair(), unknown_pair(), hostile_pair(), truth_pair()):
        write_run(*pair, out)
    write_site([], out, history=make_history(200, scenario="finnexus", step_at=150))
    # Two experiments of one system: a section and a trend each.
    failover = make_history(40, scenario="shopfront")
    partition = [
        (
            dataclasses.replace(
                r, experiment_path="experiments/region-partition.yaml", experiment_title="Partition"
            ),
            g,
        )
        for r, g in make_history(40, scenario="shopfront")
    ]
    partition = [
        (dataclasses.replace(r, run_id=f"p-{r.run_id}", started_at=r.started_at.replace("2025", "2026")),
         dataclasses.replace(g, run_id=f"p-{r.run_id}"))
        for r, g in partition
    ]  # fmt: skip
    write_site([], out, history=failover + partition)
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with chromium.chromium(tmp_path_factory.mktemp("chromium-profile")) as websocket_url:
        yield websocket_url


@pytest.mark.parametrize(
    ("page", "drawn", "nodata"),
    [
        ("run-pass/index.html", 2, 0),
        ("run-fail/index.html", 2, 0),
        ("run-unknown/index.html", 0, 2),
        ("run-hostile/index.html", 2, 0),
        ("run-truth/index.html", 2, 0),
        ("systems/finnexus.html", 1, 0),
        ("systems/aeon-nova.html", 1, 0),
        ("systems/shopfront.html", 2, 0),
        ("index.html", 0, 0),
    ],
)
def test_page_loads_cleanly_with_its_charts(
    site: Path, browser: str, page: str, drawn: int, nodata: int
) -> None:
    path = site / page
    loaded = chromium.load_page(browser, path, FACTS)
    assert loaded.console_errors == ()
    assert set(loaded.requested_urls) <= {path.resolve().as_uri()}, "a report fetches nothing"
    assert loaded.dialogs == ()
    assert loaded.facts["drawn"] == drawn
    assert loaded.facts["nodata"] == nodata
    assert loaded.facts["figures"] == drawn + nodata
    assert loaded.facts["scripts"] == 0 and loaded.facts["images"] == 0
    assert loaded.screenshot_png.startswith(b"\x89PNG")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / (page.replace("/", "_").removesuffix(".html") + ".png")).write_bytes(loaded.screenshot_png)


def test_hostile_title_and_evidence_are_text_not_markup(site: Path, browser: str) -> None:
    loaded = chromium.load_page(browser, site / "run-hostile" / "index.html", FACTS)
    assert SCRIPT_TITLE in loaded.facts["title"]
    assert SCRIPT_TITLE in loaded.facts["text"]
    assert IMG_EVIDENCE in loaded.facts["text"]
    assert loaded.facts["scripts"] == 0 and loaded.facts["images"] == 0
    assert loaded.dialogs == ()


def test_evidence_of_each_check_is_visible(site: Path, browser: str) -> None:
    loaded = chromium.load_page(browser, site / "run-truth" / "index.html", FACTS)
    text = loaded.facts["text"]
    assert "> 39.90 s" in text
    assert "Source: seeds/aeon-nova.md §4.2 Failover" in text
    assert "Missing evidence:" in text and "canary.started event of ap-south-1" in text
    assert "Witnesses:" in text and "canary: 12.5%" in text and "prometheus: 0%" in text


def test_run_page_prints(site: Path, browser: str) -> None:
    loaded = chromium.load_page(browser, site / "run-fail" / "index.html", FACTS, print_pdf=True)
    assert loaded.pdf.startswith(b"%PDF")
    pages = len(re.findall(rb"/Type\s*/Page[^s]", loaded.pdf))
    assert 2 <= pages <= 8, "the run page prints on a handful of A4 pages"
    (ARTIFACTS / "run-fail.pdf").write_bytes(loaded.pdf)


def test_artifacts_folder_is_a_copy_people_can_open(site: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copytree(site, ARTIFACTS / "site", dirs_exist_ok=True)
    assert (ARTIFACTS / "site" / "index.html").is_file()
