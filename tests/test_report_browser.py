"""The report in a real browser: headless Chromium (Debian's chromium + chromium-driver) loads it from disk.

Checks that the sound map draws one point per file, that clicking a point plays that
file's excerpt, that the colour toggle recolours the points, and that the console stays
free of errors; saves a screenshot (also to ``$AUDIOCLUST_SCREENSHOT`` when set).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from urllib.parse import unquote

import pytest

from audioclust.config import load_config
from audioclust.core.paths import ProjectPaths
from audioclust.stages import cluster, extract, metadata, transform
from audioclust.stages import report as html_report
from audioclust.stages.prepare import generate_demo

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FAST = ["parallel.n_jobs=1", "features.kinds=[mel, mfcc]", "views.features=[mfcc]", "views.kinds=[stats]",
        "views.sources=[npy]", "cluster.algorithms=[kmeans]", "cluster.k=3", "cluster.tune=false",
        "cluster.figures=false", "report.audio_seconds=1.0"]

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
    reason=f"headless Chromium not installed ({CHROMIUM} and {CHROMEDRIVER} are needed: "
           "apt-get install chromium chromium-driver, or run .ci/run)")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, int]:
    """A tiny demo project through stages 01–04 and the report: (index.html, number of files)."""
    root = tmp_path_factory.mktemp("browser")
    (root / "configs").mkdir()
    shutil.copy(REPO / "configs" / "default.yaml", root / "configs" / "default.yaml")
    cfg = load_config(root, "tiny", overrides=FAST)
    paths = ProjectPaths(root, "tiny")
    n = generate_demo(paths.raw, n_per_class=2, seconds=1.5)
    for stage in (metadata, transform, extract, cluster):
        stage.run(cfg, paths)
    html_report.run(cfg, paths)
    return html_report.report_folder(paths) / "index.html", n


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
                "--autoplay-policy=no-user-gesture-required", "--window-size=1280,900",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # an explicit driver path: Selenium Manager never downloads anything
    drv = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()


def _wait(drv, script: str, timeout: float = 10.0):
    """Poll ``script`` (returning a JS value) until it is truthy; return it, or the last value on timeout."""
    end = time.monotonic() + timeout
    value = drv.execute_script(script)
    while not value and time.monotonic() < end:
        time.sleep(0.1)
        value = drv.execute_script(script)
    return value


def test_sound_map_draws_plays_and_logs_no_error(report, driver, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    index, n_files = report
    driver.get(index.as_uri())
    assert _wait(driver, "return document.getElementById('soundmap').getAttribute('data-ready') === 'true'")
    points = driver.find_elements(By.CSS_SELECTOR, "#soundmap .pt")
    assert len(points) == n_files == 14

    # the colour toggle: by label the 7 demo families get 7 colours; by cluster, cluster.k = 3
    fills = "return Array.from(new Set(Array.from(document.querySelectorAll('#soundmap .pt')).map(p => p.getAttribute('fill')))).length"
    assert driver.execute_script(fills) == 3
    driver.find_element(By.CSS_SELECTOR, 'input[name="colour"][value="label"]').click()
    assert driver.execute_script(fills) == 7
    assert len(driver.find_elements(By.CSS_SELECTOR, "#legend li")) == 7

    # click a point (the last drawn is on top of any overlap): its own excerpt must start playing
    target = points[-1]
    i = int(target.get_attribute("data-i"))
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", target)  # clear of the player bar
    ActionChains(driver).move_to_element(target).perform()
    name = driver.execute_script(f"return JSON.parse(document.getElementById('map-data').textContent).name[{i}]")
    tip = driver.find_element(By.ID, "tip")
    assert tip.is_displayed() and name in tip.text  # hovering names the file
    target.click()
    playing = _wait(driver, "var p = document.getElementById('player');"
                            "return !p.paused && p.currentTime > 0 && document.getElementById('soundmap')"
                            ".getAttribute('data-playing')")
    assert playing == str(i), driver.execute_script(
        "var p = document.getElementById('player'); return [p.paused, p.currentTime, p.src, p.error && p.error.code]")
    src = unquote(driver.execute_script("return document.getElementById('player').src"))
    assert src.endswith(f"/{name}.ogg")
    assert (index.parent / src.split("/report/", 1)[1]).is_file()
    assert name in driver.find_element(By.ID, "info").text
    assert name in driver.find_element(By.ID, "np-text").text

    # a member link of a cluster section plays in the same player, without leaving the page
    link = driver.find_element(By.CSS_SELECTOR, "a.play")
    j = int(link.get_attribute("data-i"))
    summary = link.find_element(By.XPATH, "./ancestor::details/summary")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", summary)
    summary.click()  # the member list is folded
    link.click()
    assert _wait(driver, "var p = document.getElementById('player');"
                         "return !p.paused && p.currentTime > 0 && document.getElementById('soundmap')"
                         f".getAttribute('data-playing') === '{j}'")
    assert driver.current_url == index.as_uri()

    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors

    driver.execute_script("document.getElementById('map').scrollIntoView()")
    shot = tmp_path / "soundmap.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("AUDIOCLUST_SCREENSHOT"):
        target_path = Path(os.environ["AUDIOCLUST_SCREENSHOT"])
        target_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target_path)
