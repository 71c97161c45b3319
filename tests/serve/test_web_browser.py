"""The web pages in a real headless Chromium (Debian's chromium + chromium-driver, Selenium):
search, open a material, download its CIF, open a model; no console errors."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from dbutil import services_required
from serveutil import Served
from sqlalchemy import text


@pytest.fixture
def browser(tmp_path: Path):  # type: ignore[no-untyped-def]
    driver_path = shutil.which("chromedriver")
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    if not driver_path or not chrome:
        if services_required():
            pytest.fail("chromium and chromium-driver are required (apt-get install chromium chromium-driver)")
        pytest.skip("chromium / chromedriver not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(arg)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    driver.execute_cdp_cmd("Page.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads  # type: ignore[attr-defined]
    try:
        yield driver
    finally:
        driver.quit()


def test_search_material_cif_and_model_pages(served: Served, browser) -> None:  # type: ignore[no-untyped-def]
    if served.db.kind != "sqlite":
        pytest.skip("the pages are engine-independent; the browser runs once (SQLite)")
    from selenium.webdriver.common.by import By

    with served.db.engine.connect() as conn:
        element = conn.execute(text(
            "SELECT element FROM material_elements GROUP BY element ORDER BY COUNT(*) DESC, element"
        )).first()[0]
    browser.get(served.base + "/")
    browser.find_element(By.ID, "elements").send_keys(element)
    browser.find_element(By.ID, "go").click()
    links = browser.find_elements(By.CSS_SELECTOR, "#results a.material")
    assert links and "materials" in browser.find_element(By.ID, "count").text
    mid = int(links[0].text)
    links[0].click()
    assert browser.find_element(By.ID, "title").text.endswith(f"material {mid}")
    assert "DFT" in browser.find_element(By.ID, "properties").text
    assert "v3 (production)" in browser.find_element(By.ID, "properties").text
    assert "convex hull" in browser.find_element(By.ID, "hull").text
    browser.find_element(By.ID, "cif").click()
    deadline = time.monotonic() + 20
    files: list[Path] = []
    while time.monotonic() < deadline:
        files = [p for p in browser.downloads.iterdir() if p.suffix == ".cif"]
        if files:
            break
        time.sleep(0.2)
    assert files, "no CIF downloaded"
    from pymatgen.io.cif import CifParser

    (structure,) = CifParser(str(files[0])).parse_structures(primitive=False)
    with served.db.engine.connect() as conn:
        lat, z = conn.execute(text(
            "SELECT lattice, atomic_numbers FROM structures WHERE material_id = :m ORDER BY id"),
            {"m": mid}).first()
    assert np.allclose(structure.lattice.abc,
                       np.linalg.norm(np.frombuffer(lat, "<f8").reshape(3, 3), axis=1), atol=1e-5)
    assert len(structure) == len(np.frombuffer(z, "<i2"))
    browser.get(served.base + "/models")
    browser.find_element(By.CSS_SELECTOR, "#versions a.model").click()
    assert browser.find_element(By.ID, "title").text.startswith("Model v3")
    assert browser.find_elements(By.CSS_SELECTOR, "#parity svg")
    assert browser.find_elements(By.CSS_SELECTOR, "#curves svg polyline")
    browser.get(served.base + "/discovery")
    browser.find_element(By.CSS_SELECTOR, "#runs a.run").click()
    browser.find_element(By.CSS_SELECTOR, "#candidates a.candidate").click()
    assert "discovery run" in browser.find_element(By.ID, "lineage").text
    browser.get(served.base + "/jobs")
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
