"""The static site in a real browser: Debian's headless Chromium through Selenium, on the hostile results.

`make setup` installs chromium and chromium-driver, so this test never skips: a missing browser is a
failure of the setup, and says so.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from polymodal.leaderboard import build_leaderboard, write_site
from polymodal.leaderboard.text import plain
from tests.helpers import ROOT
from tests.leaderboard.hostile import EVIL, RANKED, write_hostile_results

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SCREENSHOT = ROOT / "build" / "screenshots" / "leaderboard-task.png"
TITLE = "xor 1.0 · polymodal leaderboard"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    assert not missing, f"{', '.join(missing)} missing: `make setup` installs chromium and chromium-driver"
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,1100"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    write_hostile_results(root / "results", root / "outside")
    return write_site(build_leaderboard(root / "results"), root / "site").parent


def _models(browser, table: str) -> list[str]:
    from selenium.webdriver.common.by import By

    rows = browser.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr")
    return [row.find_elements(By.TAG_NAME, "td")[2].text for row in rows if row.is_displayed()]


def _untouched(browser, title: str) -> None:
    """No hostile script ran: the title is the page's own, no flag was set, no injected element exists."""
    assert browser.title == title
    assert browser.execute_script("return typeof window.pwned") == "undefined"
    assert browser.execute_script("return document.querySelectorAll('script').length") == 1
    assert browser.execute_script("return document.querySelectorAll('img[src=x], a[href^=javascript]').length") == 0


def test_task_page_renders_sorts_filters_and_runs_no_hostile_script(browser, site, saved_screenshot):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    page = next(site.glob("task-xor-*.html"))
    browser.get(page.as_uri())
    _untouched(browser, TITLE)
    # The rows, in rank order; the model that ran only its own dataset is listed below, unranked.
    assert _models(browser, "ranking") == [plain(m) for m in RANKED]
    assert _models(browser, "partial") == ["lone"]
    # The hostile name is there as text, markup and all.
    assert any("<script>window.pwned=1" in name for name in _models(browser, "ranking"))

    model_header = browser.find_elements(By.CSS_SELECTOR, "#ranking thead th")[2]
    model_header.click()
    assert _models(browser, "ranking") == sorted((plain(m) for m in RANKED), key=str.lower)
    model_header.click()
    assert _models(browser, "ranking") == sorted((plain(m) for m in RANKED), key=str.lower, reverse=True)
    browser.find_elements(By.CSS_SELECTOR, "#ranking thead th")[0].click()  # back to rank order
    assert _models(browser, "ranking") == [plain(m) for m in RANKED]

    Select(browser.find_element(By.NAME, "license")).select_by_value("MIT")
    assert _models(browser, "ranking") == ["symile", "clip"]
    assert _models(browser, "partial") == []  # lone is Apache-2.0
    Select(browser.find_element(By.NAME, "license")).select_by_value("")
    assert len(_models(browser, "ranking")) == 3

    hidden = browser.find_elements(By.CSS_SELECTOR, "#ranking th.m1")
    assert hidden and not any(th.is_displayed() for th in hidden)
    browser.find_element(By.CSS_SELECTOR, "#columns summary").click()
    browser.find_element(By.CSS_SELECTOR, "#columns input[value=m1]").click()
    assert all(th.is_displayed() for th in browser.find_elements(By.CSS_SELECTOR, "#ranking th.m1"))
    browser.find_element(By.CSS_SELECTOR, "#columns input[value=m1]").click()

    # Both plots load under the page's CSP and parse: the task's plot and its robustness sweep.
    loaded = browser.execute_script("return [...document.querySelectorAll('img.plot')].map(i => [i.getAttribute("
                                    "'src'), i.complete && i.naturalWidth > 0])")
    assert [ok for _, ok in loaded] == [True, True] and loaded[1][0].endswith("-robustness.svg")

    _untouched(browser, TITLE)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))
    saved_screenshot(SCREENSHOT)


def test_model_and_dataset_pages_show_the_hostile_strings_as_text(browser, site):
    from selenium.webdriver.common.by import By

    for page in sorted(site.glob("model-evil-*.html")) + sorted(site.glob("dataset-*.html"))[:1]:
        browser.get(page.as_uri())
        heading = browser.find_element(By.TAG_NAME, "h1").text
        _untouched(browser, f"{heading} · polymodal leaderboard")
        assert "<script>window.pwned=1" in browser.find_element(By.TAG_NAME, "main").text
    browser.get(next(site.glob("model-evil-*.html")).as_uri())
    assert browser.find_element(By.TAG_NAME, "h1").text == plain(EVIL)


def test_the_site_needs_no_network(site):
    for page in site.rglob("*"):
        if page.suffix in (".html", ".css", ".js", ".svg"):
            text = page.read_text()
            assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in text
    assert shutil.which("chromium") or CHROMIUM.exists()
