"""Fixtures for the web UI suite: one headless Chromium for the whole run (Debian's chromium
through Debian's chromedriver; nothing is downloaded), a `ui` helper that drives the page the
way a person would (labels, forms, buttons) and saves a screenshot per step, the management
API for setting up and checking, and pika for the AMQP side."""

import base64
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pika
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

BASE = os.environ.get("HARE_MANAGEMENT_URL", "http://127.0.0.1:15672").rstrip("/")
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
SHOTS = os.environ.get("WEBUI_SCREENSHOTS", "/tmp/webui-shots")
CHROME_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


def unique(prefix):
    """A name no other test (or earlier run against the same broker) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Api:
    """The management API with guest's (or another user's) credentials."""

    def __init__(self, user="guest", password="guest"):
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}

    def call(self, method, path, body=None, expect=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(BASE + path, data=data, method=method, headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        if expect is not None:
            assert status == expect, f"{method} {path}: {status} {text}"
        return json.loads(text) if text else None

    def get(self, path):
        return self.call("GET", path, expect=200)

    def put(self, path, body=None):
        return self.call("PUT", path, body or {})

    def delete(self, path):
        return self.call("DELETE", path)


def q(name):
    """A path segment."""
    return urllib.parse.quote(name, safe="")


class Ui:
    """The browser, driven through what a person sees: labels, names and buttons."""

    def __init__(self, driver, test_name):
        self.driver = driver
        self.test = re.sub(r"[^A-Za-z0-9_]+", "_", test_name)
        self.step = 0

    def wait(self, timeout=10):
        return WebDriverWait(self.driver, timeout)

    def open(self, hash_path="#/"):
        self.driver.get(f"{BASE}/{hash_path}")

    def go(self, hash_path):
        self.driver.execute_script("location.hash = arguments[0]", hash_path)

    def login(self, user="guest", password="guest"):
        self.open("#/")
        # Each test starts as a new visitor: no credentials, default refresh interval.
        self.driver.execute_script("sessionStorage.clear(); localStorage.clear()")
        self.driver.refresh()
        self.type("#login-username", user)
        self.type("#login-password", password)
        self.click_button("Log in", within="#login")

    def find(self, css, timeout=10):
        return self.wait(timeout).until(EC.visibility_of_element_located((By.CSS_SELECTOR, css)))

    def finds(self, css):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def type(self, css, text, clear=True):
        element = self.find(css)
        if clear:
            element.clear()
        element.send_keys(text)
        return element

    def field(self, form_id, name):
        """An input, select or textarea of a form, by its name."""
        return self.find(f"form#{form_id} [name='{name}']")

    def fill(self, form_id, **values):
        """Types into text fields, picks options, ticks checkboxes (by field name)."""
        for name, value in values.items():
            element = self.field(form_id, name)
            tag = element.tag_name.lower()
            if tag == "select":
                from selenium.webdriver.support.ui import Select
                Select(element).select_by_value(str(value))
            elif element.get_attribute("type") == "checkbox":
                if element.is_selected() != bool(value):
                    element.click()
            else:
                element.clear()
                element.send_keys(str(value))

    def submit(self, form_id):
        self.find(f"form#{form_id} button[type='submit']").click()

    def click_button(self, text, within="body"):
        xpath = f".//button[normalize-space(.)='{text}']"
        scope = self.find(within)
        button = self.wait().until(lambda _: scope.find_element(By.XPATH, xpath))
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
        button.click()

    def accept_confirm(self):
        self.wait().until(EC.alert_is_present()).accept()

    def text(self, css="main"):
        return self.find(css).text

    def wait_text(self, text, css="main", timeout=15):
        """Waits until `css` shows `text` (a string or compiled regex); returns its text."""
        def seen(_):
            try:
                shown = self.driver.find_element(By.CSS_SELECTOR, css).text
            except Exception:  # noqa: BLE001 - the element may be re-rendered meanwhile
                return False
            matched = text.search(shown) if hasattr(text, "search") else text in shown
            return shown if matched else False
        try:
            return self.wait(timeout).until(seen)
        except TimeoutException:
            self.shot("timeout")
            shown = self.driver.find_element(By.CSS_SELECTOR, css).text if self.finds(css) else "(absent)"
            raise AssertionError(f"{css} never showed {text!r}; it shows:\n{shown[:2000]}")

    def toast(self, timeout=10):
        """The text of the newest notice."""
        return self.wait(timeout).until(
            lambda d: (d.find_elements(By.CSS_SELECTOR, "#toasts .toast") or [None])[-1]).text

    def shot(self, label):
        """Saves a screenshot of this step (numbered, named after the test and the step)."""
        self.step += 1
        os.makedirs(SHOTS, exist_ok=True)
        path = os.path.join(SHOTS, f"{self.test}-{self.step:02d}-{label}.png")
        self.driver.save_screenshot(path)
        return path


@pytest.fixture(scope="session")
def driver():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument("--window-size=1280,800")
    options.add_argument(f"--user-data-dir=/tmp/hare-webui-{uuid.uuid4().hex[:8]}")
    service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    browser = webdriver.Chrome(options=options, service=service)
    browser.set_page_load_timeout(30)
    yield browser
    browser.quit()


@pytest.fixture
def ui(driver, request):
    driver.set_window_size(1280, 800)
    page = Ui(driver, request.node.name)
    yield page
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        page.shot("failed")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def api():
    return Api()


@pytest.fixture
def amqp():
    """A pika connection to AMQP_URL; closed after the test."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    yield connection
    if connection.is_open:
        connection.close()


def eventually(check, timeout=15, interval=0.25):
    """Retries `check` until it returns a true value (returned) or the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout} s: {check}")
        time.sleep(interval)
