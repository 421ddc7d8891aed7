"""The report in a real browser: headless Chromium renders it, every image loads, no console
errors, and a hostile account name renders as text. Needs Chromium (``.ci/run`` installs it from
the distribution's packages) and playwright (in the ``test`` extra); skips with a reason otherwise.

The screenshot is kept in ``.ci/artifacts/`` (ignored by git) for a human to look at."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from _shared import use_project_root
from icpml import demo_config, make_accounts, run_discovery

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / ".ci" / "artifacts"


def _chromium() -> str:
    pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium on PATH (apt-get install chromium)")


def _render(html: Path, shot: Path, visible: tuple[str, ...] = ()) -> dict:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(),
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(html.as_uri())
        page.wait_for_load_state("load")
        images = page.evaluate(
            "Array.from(document.images).map(i => ({src: i.src.slice(0, 30), ok: i.complete "
            "&& i.naturalWidth > 0, w: i.naturalWidth}))")
        text = page.evaluate("document.body.innerText")
        shown = {sel: page.locator(sel).first.is_visible() for sel in visible}
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    return {"errors": errors, "dialogs": dialogs, "images": images, "text": text, "visible": shown}


def test_demo_report_renders_in_chromium(demo_run):
    _chromium()
    root, result = demo_run
    assert result.exit_code == 0, result.output
    html = next((root / "reports").glob("demo_*/report.html"))
    shot = ARTIFACTS / "report.png"
    got = _render(html, shot, visible=("#next-steps", "#examples-note"))
    assert got["errors"] == []
    assert got["visible"] == {"#next-steps": True, "#examples-note": True}
    text = got["text"]
    # what to do next: the export and score commands and a review date 90 days on
    assert "Next steps" in text and "icpml export --criteria reports/demo_" in text
    assert "icpml score -c CONFIG.yaml --data prospects.csv --out scored.csv" in text
    assert re.search(r"Review these criteria by \d{4}-\d{2}-\d{2} \(90 days after this run\)", text)
    # tier examples say what they are; contrast columns are labelled; models get a verdict
    assert "drawn at random from each tier" in text and "not from the fit score" in text
    assert "best cohort (top 25%)" in text and "worst cohort (bottom 25%)" in text
    assert "better than chance" in text and "0.00x (0.00-0.00)" not in text
    assert len(got["images"]) >= 5 and all(i["ok"] for i in got["images"]), got["images"]
    assert all(i["src"].startswith("data:image/") for i in got["images"])  # self-contained
    assert "Ideal Customer Profile" in got["text"] and "Tier 1" in got["text"]
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)
    assert pixels.shape[0] > 1000 and pixels.std() > 0.05  # a page, not a blank canvas


EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def evil_report(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    use_project_root(tmp_path_factory.mktemp("evil"), mp)
    df = make_accounts(1200, seed=2)
    df["company_name"] = EVIL
    df.loc[df.index[:40], "industry"] = "<b>SaaS</b>"
    cfg = demo_config().model_copy(update={"criteria": demo_config().criteria.model_copy(
        update={"stability_resamples": 0})})
    run = run_discovery(cfg, df, track=False, report=True)
    yield run.report_dir
    mp.undo()


def test_report_escapes_user_strings(evil_report):
    """No browser needed: names and category values reach the HTML only escaped."""
    html = (evil_report / "report.html").read_text()
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>SaaS" not in html
    assert "&lt;script&gt;alert" in html


def test_hostile_names_render_as_text(evil_report, tmp_path):
    _chromium()
    got = _render(evil_report / "report.html", tmp_path / "evil.png")
    assert got["dialogs"] == [] and got["errors"] == []
    assert EVIL in got["text"]  # shown, not run


def test_markdown_escapes_user_strings(evil_report):
    """Plain Markdown (no HTML entities): a tag is backslash-escaped, so a renderer shows it."""
    md = (evil_report / "criteria.md").read_text()
    assert not re.search(r"(?<!\\)<(script|img|b>)", md)  # no tag a renderer would run
    assert r"\<script>alert" in md  # the sample account names, shown as text
    assert "&lt;" not in md and "&gt;" not in md and md.endswith("\n")


@pytest.fixture()
def weak_report(tiny_report):
    """18 generated accounts, 3 per cohort: a fit model no better than chance, CV unmeasurable
    (the session's ``tiny_report``, tests/conftest.py)."""
    return tiny_report.report_dir


def test_weak_model_warning_is_visible(weak_report):
    _chromium()
    shot = ARTIFACTS / "report_weak.png"
    got = _render(weak_report / "report.html", shot, visible=("#weak-fit", "#next-steps"))
    assert got["errors"] == [] and got["visible"] == {"#weak-fit": True, "#next-steps": True}
    assert "Weak fit model." in got["text"] and "no better than chance" in got["text"]
    assert "weak: not reliable" in got["text"]
