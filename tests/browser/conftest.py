"""Real-browser tests: headless Chromium driven by Selenium (see test_playground_browser.py)."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "browser: drives a real headless Chromium (skipped, with the reason, where "
                   "Chromium, chromedriver or Selenium is missing)")
