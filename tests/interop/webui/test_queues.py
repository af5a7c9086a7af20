"""The queues list and a queue's page: declaring with the form, publishing through the UI and
reading with AMQP, live counts and rates, getting, purging and deleting, errors, paging, and
the page at a phone's width."""

import re
import time
import urllib.error
import urllib.request

from selenium.webdriver.common.by import By

from conftest import BASE, eventually, q, unique


# Figures are read in one script call: the page redraws them as its refreshes bring news, and
# an element found in one call may be gone by the next.

def shown_count(ui, key):
    """A figure of the queue page's count cards (Ready, Unacked, Total, Consumers)."""
    text = ui.driver.execute_script(
        "const v = document.querySelector(`#queue-counts [data-count='${arguments[0]}'] .value`);"
        "return v ? v.textContent : null;", key)
    return int(text.replace(",", "")) if text else None


def legend_value(ui, series):
    """The latest value a chart's legend reads out for `series` (None before a sample)."""
    value = ui.driver.execute_script(
        "const li = document.querySelector(`li[data-series='${arguments[0]}']`);"
        "return li ? li.dataset.latest : null;", series)
    return float(value) if value else None


def filter_list(ui, text):
    ui.type("input[name='filter']", text)


def first_row_name(ui):
    """The first row's name, read in one step (the rows are redrawn when the page changes)."""
    return ui.driver.execute_script(
        "const cell = document.querySelector('table.list tbody tr td');"
        "return cell ? cell.textContent : null;")


def test_declare_publish_get_purge_and_delete_a_queue(ui, api, amqp):
    name = unique("ui-q")
    path = f"/api/queues/%2F/{q(name)}"
    ui.login()
    ui.go("#/queues")
    ui.find("form#declare-queue")
    try:
        # Declare with the form: durable, with a message TTL typed as a number (quick-add link).
        ui.fill("declare-queue", vhost="/", name=name, durable="true")
        ui.click_button("Message TTL", within="form#declare-queue")
        ui.fill("declare-queue", **{"arguments-value": "60000"})
        ui.shot("declare-form")
        ui.submit("declare-queue")
        ui.wait_text(f'Queue "{name}" declared.', css="#toasts")
        declared = api.get(path)
        assert declared["durable"] is True
        assert declared["arguments"]["x-message-ttl"] == 60000
        assert isinstance(declared["arguments"]["x-message-ttl"], int)

        # The list shows it, filtered by its name, with its badges.
        filter_list(ui, name)
        ui.wait_text(re.compile(r"^1 (of [\d,]+ )?queues?$"), css=".list-table .count")
        row = ui.find(f"table.list tr[data-key='//{name}']")
        assert name in row.text and "TTL" in row.text and "D" in row.text
        ui.shot("listed")

        # Its page: publish through the form, read with pika.
        row.find_element(By.LINK_TEXT, name).click()
        ui.wait_text(f"Queue {name}", css="h1")
        ui.find("form#publish-message")
        ui.fill("publish-message", payload="hello from the UI", delivery_mode="2")
        ui.fill("publish-message", **{"headers-key": "x-origin", "headers-value": "webui"})
        ui.shot("publish-form")
        ui.submit("publish-message")
        ui.wait_text("Message published.", css="#toasts")
        channel = amqp.channel()
        method, properties, body = eventually(lambda: _get(channel, name))
        assert body == b"hello from the UI"
        assert properties.headers == {"x-origin": "webui"}
        assert properties.delivery_mode == 2
        channel.basic_ack(method.delivery_tag)

        # Five messages with AMQP: the page (no reload) counts them and charts the rate.
        ui.find("#refresh-interval")
        ui.driver.execute_script(
            "const s = document.getElementById('refresh-interval');"
            "s.value = '2000'; s.dispatchEvent(new Event('change'));")
        seen_rate = False
        for index in range(5):
            channel.basic_publish("", name, f"m{index}".encode())
            # Spread over a few seconds, so the broker's rate (the change between its last two
            # samples) stays above zero across several of the page's refreshes.
            deadline = time.monotonic() + 0.6
            while time.monotonic() < deadline:
                seen_rate = seen_rate or (legend_value(ui, "publish") or 0) > 0
                time.sleep(0.1)
        eventually(lambda: shown_count(ui, "messages_ready") == 5, timeout=20)
        if not seen_rate:
            eventually(lambda: (legend_value(ui, "publish") or 0) > 0, timeout=20)
        assert legend_value(ui, "messages_ready") == 5
        ui.driver.execute_script("document.getElementById('queue-counts').scrollIntoView()")
        ui.shot("counted-and-charted")

        # Get with requeue: shown, still queued.
        ui.fill("get-messages", ackmode="ack_requeue_true", count="1")
        ui.submit("get-messages")
        block = ui.wait_text("Message 1", css="#got-messages")
        assert "m0" in block and "Redelivered" in block
        eventually(lambda: shown_count(ui, "messages_ready") == 5)
        ui.shot("got-requeued")
        assert api.get(path)["messages"] == 5

        # Get with automatic ack: one fewer.
        ui.fill("get-messages", ackmode="ack_requeue_false")
        ui.submit("get-messages")
        eventually(lambda: shown_count(ui, "messages_ready") == 4)
        assert api.get(path)["messages"] == 4
        ui.shot("got-acked")

        # Purge: nothing ready, on the page and in the broker.
        ui.click_button("Purge messages")
        ui.accept_confirm()
        ui.wait_text(f'Queue "{name}" purged.', css="#toasts")
        eventually(lambda: shown_count(ui, "messages_ready") == 0)
        assert api.get(path)["messages_ready"] == 0
        ui.shot("purged")

        # Delete: back to the list; the broker no longer has it.
        ui.click_button("Delete queue")
        ui.accept_confirm()
        ui.wait_text(f'Queue "{name}" deleted.', css="#toasts")
        ui.wait_text("Add a queue")
        assert ui.driver.current_url.endswith("#/queues")
        assert status_of(api, path) == 404
        ui.shot("deleted")
    finally:
        # The interval is kept in the browser's storage: leave the default for other tests.
        ui.driver.execute_script("localStorage.setItem('hare.refreshMs', '5000')")
        api.delete(path)


def _get(channel, name):
    method, properties, body = channel.basic_get(name)
    return (method, properties, body) if method else None


def status_of(api, path):
    """The HTTP status of a GET (the fixture's `get` insists on 200)."""
    request = urllib.request.Request(BASE + path, headers=api.headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_an_inequivalent_declare_shows_the_reason(ui, api):
    name = unique("ui-q-inequiv")
    path = f"/api/queues/%2F/{q(name)}"
    api.call("PUT", path, {"durable": True}, expect=201)
    try:
        ui.login()
        ui.go("#/queues")
        ui.find("form#declare-queue")
        ui.fill("declare-queue", vhost="/", name=name, durable="false")
        ui.submit("declare-queue")
        text = ui.wait_text("inequivalent arg", css="#toasts")
        assert "durable" in text
        ui.shot("refused")
        assert api.get(path)["durable"] is True
    finally:
        api.delete(path)


def test_a_long_list_pages_and_sorts_on_the_server(ui, api):
    prefix = unique("ui-page")
    names = [f"{prefix}-{i:03d}" for i in range(120)]
    for name in names:
        api.call("PUT", f"/api/queues/%2F/{q(name)}", {"durable": False}, expect=201)
    try:
        ui.login()
        ui.go("#/queues")
        filter_list(ui, prefix)
        ui.wait_text(re.compile(r"^120 (of [\d,]+ )?queues?$"), css=".list-table .count")
        assert len(ui.finds("table.list tbody tr")) == 50
        assert first_row_name(ui) == names[0]
        ui.shot("page-1")

        ui.click_button("2", within="nav.pager")
        eventually(lambda: first_row_name(ui) == names[50])
        assert ui.find("nav.pager button[aria-current='page']").text == "2"
        ui.shot("page-2")

        ui.click_button("3", within="nav.pager")
        eventually(lambda: first_row_name(ui) == names[100])
        assert len(ui.finds("table.list tbody tr")) == 20

        # Sorting by name again reverses it, from the first page.
        ui.click_button("Name ▲", within="table.list")
        eventually(lambda: first_row_name(ui) == names[-1])
        ui.shot("sorted-reversed")
    finally:
        for name in names:
            api.delete(f"/api/queues/%2F/{q(name)}")


def test_an_unknown_queue_says_so(ui):
    ui.login()
    ui.go(f"#/queues/%2F/{unique('missing')}")
    ui.wait_text(re.compile(r'Queue "missing-[0-9a-f]+" not found in virtual host "/"'))
    ui.shot("not-found")


def test_the_queue_page_fits_a_phone(ui, api, amqp):
    name = unique("ui-q-phone")
    path = f"/api/queues/%2F/{q(name)}"
    api.call("PUT", path, {"durable": True, "arguments": {"x-max-length": 1000}}, expect=201)
    channel = amqp.channel()
    channel.basic_consume(name, lambda *_: None, consumer_tag=f"{name}-consumer-with-a-long-tag")
    try:
        ui.login()
        ui.driver.set_window_size(390, 844)
        ui.go(f"#/queues/%2F/{q(name)}")
        ui.wait_text(f"{name}-consumer-with-a-long-tag", css="#queue-consumers")
        ui.shot("phone-top")
        # Nothing wider than the screen: wide tables scroll inside their own box.
        width = ui.driver.execute_script("return document.documentElement.scrollWidth")
        viewport = ui.driver.execute_script("return document.documentElement.clientWidth")
        assert width <= viewport, (width, viewport)
        ui.driver.execute_script("document.getElementById('queue-bindings').scrollIntoView()")
        ui.shot("phone-bindings")
        ui.driver.execute_script("document.getElementById('publish-message').scrollIntoView()")
        ui.shot("phone-publish")
    finally:
        api.delete(path)


def test_a_monitoring_user_sees_queues_but_no_forms(ui, api):
    user = unique("ui-monitor")
    name = unique("ui-q-seen")
    path = f"/api/queues/%2F/{q(name)}"
    api.call("PUT", f"/api/users/{user}", {"password": "pw", "tags": "monitoring"}, expect=201)
    api.call("PUT", f"/api/permissions/%2F/{user}", {"configure": ".*", "write": ".*", "read": ".*"}, expect=201)
    api.call("PUT", path, {"durable": True}, expect=201)
    try:
        ui.login(user, "pw")
        ui.go("#/queues")
        ui.type("input[name='filter']", name)
        ui.wait_text(name, css="table.list")
        assert not ui.finds("form#declare-queue")
        ui.go(f"#/queues/%2F/{q(name)}")
        ui.wait_text(f"Queue {name}", css="h1")
        ui.wait_text("Bindings")
        text = ui.text()
        assert "Purge messages" not in text and "Delete queue" not in text and "Unbind" not in text
        assert not ui.finds("form#publish-message") and not ui.finds("form#get-messages")
        ui.shot("read-only")
    finally:
        api.delete(path)
        api.delete(f"/api/users/{user}")
