"""``fundl playground`` in a real browser: headless Chromium driven through Selenium.

The server runs as the command a user types (``fundl playground --no-browser``, here
``python -m fundl.cli``, port 0 so the system picks a free one); the browser is Debian's
``chromium`` with its ``chromedriver`` (nothing is downloaded). Screenshots go to
``$FUNDL_BROWSER_ARTIFACTS`` when set (CI keeps them), else to pytest's temporary folder; each
test prints where.

Skipped, with the reason, only where Chromium, chromedriver or Selenium is missing
(``apt-get install chromium chromium-driver`` and ``pip install selenium``).
"""
import base64
import io
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
import pytest

pytestmark = pytest.mark.browser

REPO = pathlib.Path(__file__).resolve().parents[2]
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver")
# Flags for a headless Chromium that may run as root in a container, offline and quiet.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1500,1100"]


def _missing():
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "Selenium is not installed (pip install selenium)"
    if CHROMIUM is None:
        return "Chromium is not installed (apt-get install chromium)"
    if CHROMEDRIVER is None:
        return "chromedriver is not installed (apt-get install chromium-driver)"
    return None


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    folder = os.environ.get("FUNDL_BROWSER_ARTIFACTS")
    path = pathlib.Path(folder) if folder else tmp_path_factory.mktemp("browser_artifacts")
    path.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots in {path}")
    return path


@pytest.fixture(scope="module")
def server_url():
    """``fundl playground --no-browser --port 0`` in a subprocess; its URL."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    process = subprocess.Popen([sys.executable, "-m", "fundl.cli", "playground", "--port", "0",
                                "--no-browser"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()  # "fundl playground at http://127.0.0.1:PORT/ ..."
        assert " at " in line, process.stderr.read()
        yield line.split(" at ")[1].split()[0]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        assert "Traceback" not in err, err


@pytest.fixture(scope="module")
def browser():
    reason = _missing()
    if reason:
        print(f"\nbrowser tests skipped: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the page's console
    profile = tempfile.mkdtemp(prefix="fundl_chromium_")
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver, script, timeout=20.0, what=None):
    """Poll the JavaScript expression ``script`` until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script("return " + script)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or script}")
        time.sleep(0.05)


def canvas_pixels(driver, canvas_id):
    """The canvas's pixels (H, W, 4) as the page drew them (toDataURL, decoded)."""
    from PIL import Image

    url = driver.execute_script(f"return document.getElementById('{canvas_id}').toDataURL()")
    data = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA")).astype(np.int16)


def open_page(driver, url):
    driver.get(url)
    wait_for(driver, "window.fundlPlayground && window.fundlPlayground.state !== null",
             what="the first network")
    driver.execute_script("document.getElementById('epochs').value = '5'")


def console_errors(driver):
    """The errors the page logged (JavaScript exceptions, failed loads) since the last call."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def post(url, path, body):
    request = urllib.request.Request(url.rstrip("/") + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def test_train_lowers_the_loss_and_redraws_the_decision_regions(browser, server_url,
                                                                 artifacts):
    open_page(browser, server_url)
    before = canvas_pixels(browser, "plot")
    browser.save_screenshot(str(artifacts / "playground_before.png"))
    assert browser.find_element("id", "epoch").text == "0"
    # The features' thumbnails and the 8 + 8 neurons' heat maps are drawn.
    assert browser.execute_script("return document.querySelectorAll('canvas.neuron').length") == 16

    # The input features and the weights between the layers are drawn too.
    assert browser.execute_script("return document.querySelectorAll('canvas.input').length") == 2
    links = canvas_pixels(browser, browser.execute_script(
        "const c = document.querySelector('#neurons canvas.links'); c.id = 'links'; return c.id"))
    assert (links[..., 3] > 0).mean() > 0.02  # lines cover part of the network's picture

    browser.find_element("id", "train").click()
    losses = wait_for(browser, "(s => s.losses.length >= 6 && s.losses)(fundlPlayground.state)",
                      what="six training updates")
    browser.find_element("id", "pause").click()
    wait_for(browser, "!fundlPlayground.running && !fundlPlayground.busy", what="the pause")
    browser.save_screenshot(str(artifacts / "playground_trained.png"))

    state = browser.execute_script("return fundlPlayground.state")
    losses = state["losses"]
    assert losses[-1] < losses[0], losses
    assert browser.find_element("id", "loss").text == f"{losses[-1]:.4f}"
    assert int(browser.find_element("id", "epoch").text) >= 30
    assert browser.find_element("id", "test_accuracy").text.endswith("%")
    after = canvas_pixels(browser, "plot")
    changed = np.any(np.abs(after - before) > 8, axis=-1).mean()
    assert changed > 0.05, f"only {changed:.1%} of the decision-region pixels changed"

    # Test points appear on request; "discretize" paints whole classes.
    browser.find_element("id", "show_test").click()
    with_test = canvas_pixels(browser, "plot")
    assert np.any(with_test != after)
    browser.find_element("id", "discretize").click()
    browser.save_screenshot(str(artifacts / "playground_discretized.png"))
    discrete = canvas_pixels(browser, "plot")
    assert len({tuple(p) for p in discrete[::7, ::7].reshape(-1, 4)}) < \
        len({tuple(p) for p in with_test[::7, ::7].reshape(-1, 4)})
    assert console_errors(browser) == []


def test_rapid_changes_train_the_network_the_controls_show(browser, server_url, artifacts):
    open_page(browser, server_url)
    # Hold each /api/new answer back, the first longest: the answers arrive in reverse order,
    # the worst case of overlapping requests (seen by users as one network shown, another
    # trained).
    browser.execute_script("""
        const realFetch = window.fetch;
        let count = 0;
        window.fetch = async (path, options) => {
          const response = await realFetch(path, options);
          if (path === "/api/new") {
            const delay = Math.max(0, 1200 - 200 * count++);
            await new Promise((resolve) => setTimeout(resolve, delay));
          }
          return response;
        };""")
    browser.execute_script("""
        const set = (id, value) => {
          const el = document.getElementById(id);
          if (el.type === "checkbox") el.checked = value; else el.value = value;
          el.dispatchEvent(new Event("change"));
        };
        set("dataset", "xor"); set("hidden", "4"); set("activation", "relu");
        set("f_x2", true); set("hidden", "3,2"); set("regularization", "l2");
        set("regularization_rate", "0.001"); set("train_ratio", "70");""")
    browser.find_element("id", "train").click()  # while six requests are out
    wait_for(browser, "(s => s && s.losses.length >= 2)(fundlPlayground.state)", timeout=25,
             what="training after the rapid changes")
    browser.find_element("id", "pause").click()
    wait_for(browser, "!fundlPlayground.running && !fundlPlayground.busy", what="the pause")
    browser.save_screenshot(str(artifacts / "playground_rapid_changes.png"))

    controls = browser.execute_script("return fundlPlayground.spec()")
    state = browser.execute_script("return fundlPlayground.state")
    expected = {**controls, "hidden": [3, 2], "classes": 2}
    shown = {k: v for k, v in state["spec"].items() if k != "seq"}
    assert shown == expected
    assert state["seq"] == browser.execute_script("return fundlPlayground.seq")
    # The server trains that same network under the page's session id.
    trained = post(server_url, "/api/train", {"session": state["session"], "epochs": 1})
    assert {k: v for k, v in trained["spec"].items() if k != "seq"} == expected
    assert trained["epoch"] == int(browser.find_element("id", "epoch").text) + 1
    # x, y, x² in; 3 and 2 hidden units; 2 classes out.
    assert browser.find_element("id", "params").text == str((3 * 3 + 3) + (3 * 2 + 2)
                                                            + (2 * 2 + 2))
    assert browser.execute_script("return document.querySelectorAll('canvas.neuron').length") == 5
    assert console_errors(browser) == []


def test_bad_input_shows_the_servers_message(browser, server_url):
    open_page(browser, server_url)
    console_errors(browser)
    browser.execute_script("""
        const el = document.getElementById("hidden");
        el.value = "8,0"; el.dispatchEvent(new Event("change"));""")
    message = wait_for(browser, "document.getElementById('error').textContent",
                       what="the error message")
    assert "hidden" in message and "from 1 to 64" in message
    assert browser.execute_script("return fundlPlayground.state") is None
    browser.find_element("id", "train").click()  # nothing to train: the message stays
    assert "hidden" in browser.find_element("id", "error").text
    # The 400 answer is logged by the browser as a failed load, and nothing else.
    errors = console_errors(browser)
    assert all("400" in e for e in errors), errors
