"""The exchanges list and an exchange's page: declaring with the form, binding a queue,
publishing routed and unrouted messages, unbinding and deleting."""

import re

from selenium.webdriver.common.by import By

from conftest import eventually, q, unique
from test_queues import status_of


def test_declare_bind_publish_unbind_and_delete_an_exchange(ui, api, amqp):
    exchange = unique("ui-x")
    queue = unique("ui-xq")
    x_path = f"/api/exchanges/%2F/{q(exchange)}"
    q_path = f"/api/queues/%2F/{q(queue)}"
    api.call("PUT", q_path, {"durable": False}, expect=201)
    try:
        ui.login()
        ui.go("#/exchanges")
        ui.find("form#declare-exchange")
        ui.fill("declare-exchange", vhost="/", name=exchange, type="topic", durable="true")
        ui.shot("declare-form")
        ui.submit("declare-exchange")
        ui.wait_text(f'Exchange "{exchange}" declared.', css="#toasts")
        declared = api.get(x_path)
        assert declared["type"] == "topic" and declared["durable"] is True

        ui.type("input[name='filter']", exchange)
        ui.wait_text(re.compile(r"^1 (of [\d,]+ )?exchanges$"), css=".list-table .count")
        row = ui.find(f"table.list tr[data-key='//{exchange}']")
        assert "topic" in row.text
        ui.shot("listed")

        # Bind the queue with a pattern through the exchange page's form.
        row.find_element(By.LINK_TEXT, exchange).click()
        ui.wait_text(f"Exchange {exchange}", css="h1")
        ui.fill("add-binding", destination_type="q", destination=queue, routing_key="orders.*")
        ui.submit("add-binding")
        ui.wait_text("Binding added.", css="#toasts")
        ui.wait_text(queue, css="#exchange-bindings-source")
        assert "orders.*" in ui.text("#exchange-bindings-source")
        bindings = api.get(f"/api/bindings/%2F/e/{q(exchange)}/q/{q(queue)}")
        assert [b["routing_key"] for b in bindings] == ["orders.*"]
        ui.shot("bound")

        # A matching key reaches the queue; pika reads it.
        ui.fill("publish-message", routing_key="orders.new", payload="routed by topic")
        ui.submit("publish-message")
        ui.wait_text("Message published.", css="#toasts")
        channel = amqp.channel()
        got = eventually(lambda: _get(channel, queue))
        assert got == b"routed by topic"
        ui.shot("published-routed")

        # A key nothing matches is accepted but not routed, and the page says so.
        ui.fill("publish-message", routing_key="invoices.new")
        ui.submit("publish-message")
        ui.wait_text("Message published, but not routed.", css="#toasts")
        assert api.get(q_path)["messages"] == 0
        ui.shot("published-unrouted")

        # Unbind.
        ui.click_button("Unbind", within="#exchange-bindings-source")
        ui.wait_text("This exchange routes to nothing yet.", css="#exchange-bindings-source")
        assert api.get(f"/api/bindings/%2F/e/{q(exchange)}/q/{q(queue)}") == []
        ui.shot("unbound")

        # Delete: back to the list; the broker no longer has it.
        ui.click_button("Delete exchange")
        ui.accept_confirm()
        ui.wait_text(f'Exchange "{exchange}" deleted.', css="#toasts")
        ui.wait_text("Add an exchange")
        assert status_of(api, x_path) == 404
        ui.shot("deleted")
    finally:
        api.delete(x_path)
        api.delete(q_path)


def _get(channel, name):
    method, _, body = channel.basic_get(name, auto_ack=True)
    return body if method else None


def test_the_default_exchange_has_a_page_without_delete(ui):
    ui.login()
    ui.go("#/exchanges/%2F/amq.default")
    ui.wait_text("Exchange (AMQP default)", css="h1")
    assert ui.find("form#publish-message")
    assert not ui.finds("form#add-binding")
    assert "Delete exchange" not in ui.text()
    ui.shot("default-exchange")
