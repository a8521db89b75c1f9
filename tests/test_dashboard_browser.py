"""The dashboard and the report in a real browser: headless Chromium driven by Selenium.

Skipped only where Chromium or its driver is not installed; CI installs both (.ci/run). Set
AQF_DASHBOARD_SCREENSHOT to a path to keep the dashboard's screenshot (the README's)."""
import io
import json
import os
import shutil
import threading

import numpy as np
import pytest

pytest.importorskip("plotly", reason="the dashboard needs the dashboard extra (plotly)")
webdriver = pytest.importorskip("selenium.webdriver", reason="the browser tests need selenium")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="Chromium and chromedriver are "
                                "not installed (apt-get install chromium chromium-driver)")

from PIL import Image  # noqa: E402
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from aquasurf_fast.dashboard import make_server, write_report  # noqa: E402
from test_dashboard import HOSTILE, real_study, search  # noqa: E402

WAIT_S = 60


def browser(offline=False):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1440,1500", "--hide-scrollbars"):
        options.add_argument(arg)
    if offline:
        # Every request that leaves the page goes to a closed port (the discard port): the report
        # must need none. The performance log then shows whether one was even tried.
        options.add_argument("--proxy-server=127.0.0.1:9")
        options.add_argument("--proxy-bypass-list=<-loopback>")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)


@pytest.fixture(scope="module")
def study_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("browser") / "s.db")
    study = real_study(path, n_unary=8)
    search(study, 16, test_acc=0.5)
    claim = study.suggest(1)[0]
    study.fail(study.suggest(1)[0], f"Traceback (most recent call last):\nRuntimeError: {HOSTILE}")
    yield path, study.counts(), str(claim)
    study.close()


def rendered(driver):
    WebDriverWait(driver, WAIT_S).until(
        lambda d: d.execute_script("return window.aqf && window.aqf.renders > 0"))
    return driver.execute_script("return window.aqf")


def select_first_row(driver):
    driver.find_element(By.CSS_SELECTOR, "#top tr.pick").click()
    WebDriverWait(driver, WAIT_S).until(lambda d: d.execute_script(
        "const c = document.getElementById('curve'); return c.data && c.data.length === 2"))
    return driver.find_element(By.ID, "detail-name").text


def assert_not_blank(png: bytes):
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    assert pixels.shape[0] > 500 and pixels.std() > 20
    # Not one flat colour with a few marks: many grey levels are in use.
    assert np.unique(pixels.astype(np.uint8)).size > 50


def requests_made(driver):
    return [json.loads(e["message"])["message"]["params"]["request"]["url"]
            for e in driver.get_log("performance")
            if '"Network.requestWillBeSent"' in e["message"]]


def assert_page_holds_the_study(driver, counts, running):
    aqf = rendered(driver)
    n_candidates = counts["candidates"]
    # The running class is drawn on its own marker, not as an untrained point.
    assert aqf["mapPoints"] == n_candidates - counts["running"] - counts["failed"]
    assert aqf["tableRows"] == counts["done"]
    assert driver.find_element(By.ID, "failures").text.count(HOSTILE) == 1
    assert running in driver.find_element(By.ID, "claims").text
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text


def test_dashboard_renders_the_map_table_and_a_selected_curve(study_path, tmp_path):
    path, counts, running = study_path
    srv = make_server(path, port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    driver = browser()
    try:
        driver.get(f"http://127.0.0.1:{srv.server_address[1]}/")
        assert_page_holds_the_study(driver, counts, running)
        name = select_first_row(driver)
        assert name and driver.execute_script("return window.aqf.selected") is not None
        # A click on the map selects its point as well (Plotly's click event).
        driver.execute_script("const m = document.getElementById('map');"
                              "m.emit('plotly_click', {points: [{customdata: m.data[0].customdata[0]}]})")
        WebDriverWait(driver, WAIT_S).until(lambda d: d.find_element(By.ID, "detail-name").text != name)
        png = driver.get_screenshot_as_png()
    finally:
        driver.quit()
        srv.shutdown()
        srv.server_close()
    assert_not_blank(png)
    keep = os.environ.get("AQF_DASHBOARD_SCREENSHOT")
    (tmp_path / "dashboard.png").write_bytes(png)
    if keep:
        with open(keep, "wb") as f:
            f.write(png)


def test_report_opens_from_disk_without_network(study_path, tmp_path):
    path, counts, running = study_path
    report = tmp_path / "report.html"
    write_report(path, str(report))
    driver = browser(offline=True)
    try:
        driver.get(report.as_uri())
        assert_page_holds_the_study(driver, counts, running)
        assert select_first_row(driver)
        png = driver.get_screenshot_as_png()
        urls = requests_made(driver)
    finally:
        driver.quit()
    assert_not_blank(png)
    assert urls and all(u.startswith(("file:", "data:", "blob:")) for u in urls), urls
