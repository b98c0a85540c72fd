"""The Space in a real browser: headless Debian Chromium driven by Playwright (no browser download).

Clicks a chromosome example and sees the predicted label; uploads a whole cell as a zip, clicks
Karyotype and sees the karyogram and the ISCN string; uploads a bare metaphase and sees its boxes
beside the karyogram. Screenshots go to ``tmp_path``, or to the folder
named by ``CHROMOSOMENET_SCREENSHOTS`` (``CHROMOSOMENET_SCREENSHOTS=docs make test`` refreshes the
README's ``docs/space_*.png`` with the shipped model; a plain test run uses the one-epoch test model
and leaves the tree untouched).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("needs Debian's chromium at /usr/bin/chromium (`apt-get install chromium`; `.ci/run` and the "
                "Makefile install it when run as root)", allow_module_level=True)
pytest.importorskip("gradio", reason="the Space needs the [space] extra (gradio)")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (dev extra)")

from spacekit import SAMPLE, cell_files, free_port, zip_of  # noqa: E402

import chromosomenet  # noqa: E402
from chromosomenet.apps.engine import Engine, classify_chromosome, karyotype_files, karyotype_metaphase  # noqa: E402
from chromosomenet.apps.serve import launch  # noqa: E402
from chromosomenet.models import shipped  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")  # inside gradio

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def model_spec(trained_run: Path) -> str:
    """The test run; the shipped model when refreshing the README's screenshots (they show real calls)."""
    if os.environ.get("CHROMOSOMENET_SCREENSHOTS") and shipped.default_model():
        return f"local-dir:{shipped.default_model()}"
    return f"local-dir:{trained_run}"


@pytest.fixture(scope="module")
def engine(model_spec: str) -> Engine:
    return Engine(model_spec)


@pytest.fixture(scope="module")
def served(model_spec: str):
    port = free_port()
    demo = launch(model_spec, port=port, block=False, quiet=True)
    yield demo, f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def page():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 1000})
        finally:
            browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    out = Path(os.environ.get("CHROMOSOMENET_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_chromosome_example_click_shows_the_label(page, served, engine, shots: Path):
    page.goto(served[1])
    example = page.get_by_role("button", name=re.compile(r"^chromosome 18 \(")).first
    example.wait_for(timeout=TIMEOUT_MS)
    file_name = re.search(r"\((.+)\)", example.inner_text()).group(1)
    want = classify_chromosome(engine, next(SAMPLE.glob(f"*/{file_name}"))).label
    example.click()  # one click: loads the example and runs it
    label = page.locator("#top5 [data-testid='label-output-value']")
    label.wait_for(timeout=TIMEOUT_MS)
    sync_api.expect(label).to_have_text(want, timeout=TIMEOUT_MS)
    sync_api.expect(page.locator("#top5 [data-testid$='-confidence-set']")).to_have_count(5)
    page.get_by_text("Grad-CAM of the top class").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "space_chromosome.png"), full_page=True)


def test_cell_upload_shows_karyogram_and_iscn(page, served, engine, shots: Path, tmp_path: Path):
    files = cell_files("1051261")
    want = karyotype_files(engine, files, tmp_path / "ref").call.iscn
    page.goto(served[1])
    page.get_by_role("tab", name="Whole cell").click()
    upload = page.locator("#cell-upload input[type=file]")
    upload.set_input_files(str(zip_of(tmp_path / "cell_1051261.zip", files)))
    # Gradio shows the name as stem and extension in two spans, at times with white space between them
    sync_api.expect(page.locator("#cell-upload")).to_contain_text(re.compile(r"cell_1051261\s*\.zip"),
                                                                  timeout=TIMEOUT_MS)
    page.click("#karyotype")
    sync_api.expect(page.locator("#iscn textarea")).to_have_value(want, timeout=TIMEOUT_MS)
    karyogram = page.locator("#karyogram img")
    karyogram.wait_for(state="visible", timeout=TIMEOUT_MS)
    assert page.evaluate("img => img.complete && img.naturalWidth > 500", karyogram.element_handle())
    page.screenshot(path=str(shots / "space_cell.png"), full_page=True)


def test_bare_metaphase_upload_shows_its_boxes_beside_the_karyogram(page, served, engine, shots: Path,
                                                                    tmp_path: Path):
    jpg = chromosomenet.sample_metaphases_dir() / "1051261.jpg"
    want = karyotype_metaphase(engine, jpg, None, tmp_path / "ref").call.iscn or "no karyotype called"
    page.goto(served[1])
    page.get_by_role("tab", name="Whole cell").click()
    page.locator("#metaphase-upload input[type=file]").set_input_files(str(jpg))
    sync_api.expect(page.locator("#metaphase-upload")).to_contain_text(re.compile(r"1051261\s*\.jpg"),
                                                                       timeout=TIMEOUT_MS)
    page.click("#karyotype-metaphase")
    sync_api.expect(page.locator("#iscn textarea")).to_have_value(want, timeout=TIMEOUT_MS)
    for elem in ("#karyogram img", "#metaphase-boxes img"):
        img = page.locator(elem)
        img.wait_for(state="visible", timeout=TIMEOUT_MS)
        assert page.evaluate("img => img.complete && img.naturalWidth > 500", img.element_handle())
    page.screenshot(path=str(shots / "space_metaphase.png"), full_page=True)
