#!/usr/bin/env python3
"""Screenshots of Hare's web UI for the docs: the overview and one queue's page, in a real
headless Chromium, after the page has refreshed for a while (so its charts have points).

  tests/interop/.cache/venv/bin/python benches/webui_screenshots.py \
      --url http://127.0.0.1:15672 --queue bench-q --wait 60 --out docs/images

Run it while a load (hareperf, amqp-bench) runs against the broker, so the charts move.
Writes webui-overview.png and webui-queue.png (1280 px wide) into --out.
"""

import argparse
import os
import time
import urllib.parse
import uuid

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:15672")
    parser.add_argument("--user", default="guest")
    parser.add_argument("--password", default="guest")
    parser.add_argument("--queue", required=True, help="queue (in vhost --vhost) to show")
    parser.add_argument("--vhost", default="/")
    parser.add_argument("--wait", type=float, default=60, help="seconds the queue page refreshes before its shot")
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--out", default="docs/images")
    args = parser.parse_args()
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size=1280,{args.height}")
    options.add_argument(f"--user-data-dir=/tmp/webui-shots-{uuid.uuid4().hex[:8]}")
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    wait = WebDriverWait(driver, 30)
    try:
        driver.get(args.url + "/")
        wait.until(lambda d: d.find_elements(By.ID, "login-username"))
        driver.find_element(By.ID, "login-username").send_keys(args.user)
        driver.find_element(By.ID, "login-password").send_keys(args.password)
        driver.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
        wait.until(lambda d: "Totals" in d.find_element(By.ID, "main").text)
        # The overview's charts come from the server's samples: full at once.
        time.sleep(6)
        os.makedirs(args.out, exist_ok=True)
        driver.save_screenshot(os.path.join(args.out, "webui-overview.png"))
        quote = lambda text: urllib.parse.quote(text, safe="")  # noqa: E731
        driver.execute_script("location.hash = arguments[0]", f"#/queues/{quote(args.vhost)}/{quote(args.queue)}")
        wait.until(lambda d: args.queue in d.find_element(By.ID, "main").text)
        # A queue's charts are drawn from what the page has seen: let it refresh a while.
        time.sleep(args.wait)
        driver.save_screenshot(os.path.join(args.out, "webui-queue.png"))
    finally:
        driver.quit()
    print(f"wrote {args.out}/webui-overview.png and {args.out}/webui-queue.png")


if __name__ == "__main__":
    main()
