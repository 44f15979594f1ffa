"""`emollm serve` in a real headless Chromium: upload a picture, ask, watch the answer stream in and
the MVP's stages appear; an oversized upload is refused; two questions at once run one after the
other; no file outside the uploads is served.

Needs gradio and selenium (the `serve` and `dev` extras) and Debian's `chromium` and
`chromium-driver` (/usr/bin/chromium, /usr/bin/chromedriver); skipped with the reason otherwise.
Set EMOLLM_SCREENSHOT=docs/serve.png to keep the page's screenshot.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio", reason="emollm serve needs gradio: pip install 'emollm[serve]'")
pytest.importorskip("selenium", reason="the browser test drives Chromium with selenium: pip install 'emollm[dev]'")
CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver")
if not (os.path.exists(CHROMIUM) and CHROMEDRIVER):
    pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
                allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
UPLOAD_LIMIT_MB = 0.1
WAIT = 90  # seconds: the longest any one step may take on a busy 2-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``(url, log path)`` of `emollm serve --model emollm-tiny` on 127.0.0.1, killed at the end."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, "-m", "emollm", "serve", "--model", "emollm-tiny", "--port", str(port),
               "--max-upload-mb", str(UPLOAD_LIMIT_MB), "--max-new-tokens", "96", "--view-tau", "0.3"]
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"emollm serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"emollm serve did not answer within 120 s:\n{log.read_text()}")
            time.sleep(0.5)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="emollm-chromium-")
    # Without the background-networking flags Chromium's own connections fail noisily on a closed network.
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,1300"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """A photo within the upload limit (scikit-image's astronaut when installed) and a noise PNG over it."""
    folder = tmp_path_factory.mktemp("pictures")
    try:
        import skimage.data

        photo = Image.fromarray(skimage.data.astronaut())
    except ImportError:
        photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8))
    photo.resize((256, 256)).save(folder / "photo.jpg", quality=90)
    noise = np.random.default_rng(1).integers(0, 256, (320, 320, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "too-big.png")
    assert (folder / "photo.jpg").stat().st_size < UPLOAD_LIMIT_MB * 2**20 < (folder / "too-big.png").stat().st_size
    return folder / "photo.jpg", folder / "too-big.png"


def _printable(text: str) -> str:
    return "".join(ch for ch in text if ch.isprintable()).strip()


def _open(driver, url):
    driver.get(url)
    WebDriverWait(driver, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#ask"))


def _upload(driver, path):
    driver.find_element(By.CSS_SELECTOR, "#image input[type=file]").send_keys(str(path))


def _uploaded(driver):
    WebDriverWait(driver, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#image img"))


def _done(driver):
    """Wait for the final update: the answer's timings table (it comes with the whole answer)."""
    WebDriverWait(driver, WAIT).until(lambda d: "whole answer" in d.find_element(By.CSS_SELECTOR, "#timings").text)


# Records every distinct value the answer box takes, sampled every 5 ms inside the page.
RECORD_ANSWERS = """
window.emollmSeen = [];
setInterval(() => {
  const box = document.querySelector('#answer textarea');
  const value = box ? box.value : null;
  if (window.emollmSeen[window.emollmSeen.length - 1] !== value) window.emollmSeen.push(value);
}, 5);
"""


def test_answer_streams_in_and_the_mvp_stages_appear(server, browser, pictures):
    url, _ = server
    _open(browser, url)
    _upload(browser, pictures[0])
    _uploaded(browser)
    browser.execute_script(RECORD_ANSWERS)
    browser.find_element(By.CSS_SELECTOR, "#ask").click()
    _done(browser)
    answer = browser.find_element(By.CSS_SELECTOR, "#answer textarea").get_attribute("value")
    seen = [v for v in browser.execute_script("return window.emollmSeen") if v]
    partial = [v for v in seen if v != answer]
    assert answer.strip() and len(partial) >= 2, seen
    # Each partial is a beginning of the answer (compared on printable characters: a random model's
    # text holds control characters that the text box may normalise).
    assert all(_printable(answer).startswith(_printable(v)) for v in partial), (partial, answer)

    timings = browser.find_element(By.CSS_SELECTOR, "#timings").text
    stage_rows = re.findall(r"^([123]) (64|32|16) (\d+) [\d.]+ [\d.]+$", timings, re.MULTILINE)
    assert [(s, c) for s, c, _ in stage_rows] == [("1", "64"), ("2", "32"), ("3", "16")], timings
    assert sum(int(e) for _, _, e in stage_rows) > 0, "the drawn τ-graphs have no edge"  # at --view-tau 0.3
    assert "dpc_cluster_merge" in timings and "on cpu" in timings

    src = browser.find_element(By.CSS_SELECTOR, "#mvp img").get_attribute("src")
    with urllib.request.urlopen(src, timeout=WAIT) as response:
        picture = Image.open(response)
        picture.load()
    assert picture.width >= 3 * 224 and picture.height >= 224  # three stage panels side by side

    browser.execute_script("window.scrollTo(0, 0)")
    shot = Path(os.environ.get("EMOLLM_SCREENSHOT") or Path(tempfile.gettempdir()) / "emollm-serve.png")
    assert browser.save_screenshot(str(shot))


def test_an_oversized_upload_is_refused(server, browser, pictures):
    url, _ = server
    _open(browser, url)
    _upload(browser, pictures[1])
    WebDriverWait(browser, WAIT).until(
        lambda d: "exceed the maximum allowed size" in d.find_element(By.TAG_NAME, "body").text)
    assert not browser.find_elements(By.CSS_SELECTOR, "#image img")  # nothing was taken


def test_two_questions_at_once_run_one_after_the_other(server, browser, pictures):
    url, log = server
    tabs = []
    for _ in range(2):
        if tabs:
            browser.switch_to.new_window("tab")
        _open(browser, url)
        _upload(browser, pictures[0])
        _uploaded(browser)
        tabs.append(browser.current_window_handle)
    asked = len(re.findall(r"question \d+ started", log.read_text()))
    clicks = []
    for tab in tabs:  # both asked within milliseconds of each other
        browser.switch_to.window(tab)
        browser.find_element(By.CSS_SELECTOR, "#ask").click()
        clicks.append(time.time())
    for tab in tabs:
        browser.switch_to.window(tab)
        _done(browser)
    text = log.read_text()
    started = [float(t) for t in re.findall(r"question \d+ started at ([\d.]+)", text)][asked:]
    finished = [float(t) for t in re.findall(r"question \d+ finished at ([\d.]+)", text)][asked:]
    assert len(started) == len(finished) == 2, text
    assert clicks[1] < finished[0], "the first answer ended before the second question was asked: nothing to queue"
    assert started[1] >= finished[0], f"the questions overlapped: {started}, {finished}"
    browser.close()
    browser.switch_to.window(tabs[0])


def test_no_file_outside_the_uploads_is_served(server):
    url, _ = server
    for path in ("/etc/passwd", str(ROOT / "pyproject.toml")):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}gradio_api/file={path}", timeout=WAIT)
        assert refused.value.code in (403, 404)
