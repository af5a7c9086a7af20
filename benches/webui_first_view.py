#!/usr/bin/env python3
"""Time to first view of a management web UI with many queues, in a real headless Chromium.

For each broker (Hare's UI and, if given, RabbitMQ's management UI on the same machine), runs
interleaved: sign in, then load the overview and the queue list from a fresh navigation and
measure, from the navigation's start (performance.now() in the page), until the overview shows
its totals and until the queue list shows its first rows. "cold" clears the browser cache
first (every script and stylesheet fetched again), "warm" keeps it (a reload). Medians of the
runs are printed as a Markdown table.

  tests/interop/.cache/venv/bin/python benches/webui_first_view.py \
      --hare http://127.0.0.1:15699 --hare-amqp amqp://guest:guest@127.0.0.1:5699/ \
      --rabbit http://127.0.0.1:15672 --rabbit-amqp amqp://guest:guest@127.0.0.1:5690/ \
      --queues 10000 --runs 5

Queues named `firstview-NNNNN` are declared (if missing) on each broker first; --cleanup
deletes them at the end. Needs selenium and pika (the interop venv has both) and Debian's
chromium and chromedriver.
"""

import argparse
import statistics
import time
import uuid

import pika
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,800"]

# Resolves with performance.now() once `check()` is true (polled every animation frame).
WAIT_SCRIPT = """
const [kind, done] = [arguments[0], arguments[arguments.length - 1]];
const checks = {
  overview: () => /Totals/.test(document.querySelector('#main')?.innerText || '')
      && document.querySelectorAll('#main .chart, #main table').length > 0,
  queues: () => document.querySelectorAll('table.list tbody tr td a').length >= 10,
};
const started = performance.now();
(function poll() {
  if (checks[kind]()) return done(performance.now());
  if (performance.now() - started > 30000) return done(-1);
  requestAnimationFrame(poll);
})();
"""


def declare_queues(url, count):
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    started = time.monotonic()
    for index in range(count):
        channel.queue_declare(f"firstview-{index:05d}", durable=False, auto_delete=False)
    connection.close()
    return time.monotonic() - started


def delete_queues(url, count):
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    for index in range(count):
        channel.queue_delete(f"firstview-{index:05d}")
    connection.close()


def new_driver():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir=/tmp/firstview-{uuid.uuid4().hex[:8]}")
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_script_timeout(40)
    return driver


def sign_in(driver, base, kind):
    driver.get(base + "/")
    wait = WebDriverWait(driver, 20)
    if kind == "hare":
        wait.until(lambda d: d.find_elements(By.ID, "login-username"))
        driver.find_element(By.ID, "login-username").send_keys("guest")
        driver.find_element(By.ID, "login-password").send_keys("guest")
        driver.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
    else:
        wait.until(lambda d: d.find_elements(By.NAME, "username"))
        driver.find_element(By.NAME, "username").send_keys("guest")
        driver.find_element(By.NAME, "password").send_keys("guest")
        driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait.until(lambda d: "Totals" in d.find_element(By.ID, "main").text)


def first_view(driver, base, hash_path, check, cold):
    if cold:
        driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    driver.get("about:blank")
    driver.get(f"{base}/{hash_path}")
    return driver.execute_async_script(WAIT_SCRIPT, check)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hare", required=True)
    parser.add_argument("--hare-amqp", required=True)
    parser.add_argument("--rabbit")
    parser.add_argument("--rabbit-amqp")
    parser.add_argument("--queues", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cleanup", action="store_true")
    args = parser.parse_args()
    brokers = [("hare", args.hare, args.hare_amqp)]
    if args.rabbit:
        brokers.append(("rabbitmq", args.rabbit, args.rabbit_amqp))
    for name, _, amqp in brokers:
        print(f"{name}: {args.queues} queues declared in {declare_queues(amqp, args.queues):.1f} s")
    drivers = {}
    for name, base, _ in brokers:
        drivers[name] = new_driver()
        sign_in(drivers[name], base, "hare" if name == "hare" else "rabbitmq")
    results = {}
    for _ in range(args.runs):
        for name, base, _ in brokers:
            for label, hash_path, check in [("overview", "#/", "overview"), ("queues", "#/queues", "queues")]:
                for cold in (True, False):
                    ms = first_view(drivers[name], base, hash_path, check, cold)
                    results.setdefault((name, label, cold), []).append(ms)
    for driver in drivers.values():
        driver.quit()
    if args.cleanup:
        for _, _, amqp in brokers:
            delete_queues(amqp, args.queues)
    print(f"\nTime to first view with {args.queues:,} queues (ms from navigation start; median of {args.runs})\n")
    header = "| view | " + " | ".join(name for name, _, _ in brokers) + (" | ratio |" if len(brokers) > 1 else "")
    print(header)
    print("|" + " --- |" * (header.count("|") - 1))
    for label in ("overview", "queues"):
        for cold in (True, False):
            medians = [statistics.median(results[(name, label, cold)]) for name, _, _ in brokers]
            row = f"| {label} ({'cold' if cold else 'warm'}) | " + " | ".join(f"{m:.0f}" for m in medians)
            if len(medians) > 1 and medians[0] > 0:
                row += f" | {medians[1] / medians[0]:.1f}×"
            print(row + " |")
    print("\nall runs:", {f"{k[0]}/{k[1]}/{'cold' if k[2] else 'warm'}": [round(v) for v in vs] for k, vs in results.items()})


if __name__ == "__main__":
    main()
