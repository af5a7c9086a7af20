"""Connections and channels: the lists show pika's connections with their client properties,
a connection's page shows them and its channel, and closing one through the UI closes it for
the client with 320 CONNECTION_FORCED and the reason typed in."""

import pika
import pika.exceptions
from selenium.webdriver.support.ui import Select

from conftest import AMQP_URL, eventually, q, unique


def named_connection(name):
    """A pika connection that names itself `name` (client property connection_name)."""
    params = pika.URLParameters(AMQP_URL)
    params.client_properties = {"connection_name": name}
    return pika.BlockingConnection(params)


def listed_name(api, provided):
    """The broker's name (the address pair) of the connection that calls itself `provided`."""
    def find():
        for connection in api.get("/api/connections"):
            if connection.get("user_provided_name") == provided:
                return connection["name"]
        return None
    return eventually(find)


def row_of(ui, text, css="table.list tbody tr"):
    """The text of the table row that shows `text`."""
    def find():
        for row in ui.finds(css):
            shown = row.text
            if text in shown:
                return shown
        return None
    return eventually(find)


def test_connections_channels_and_closing_one(ui, api):
    kept_name, closed_name = unique("webui-kept"), unique("webui-closed")
    kept = named_connection(kept_name)
    closed = named_connection(closed_name)
    try:
        kept.channel()
        closed.channel()
        kept_key = listed_name(api, kept_name)
        closed_key = listed_name(api, closed_name)

        ui.login()
        ui.go("#/connections")
        ui.wait_text(kept_name, css="table.list")
        ui.wait_text(closed_name, css="table.list")
        row = row_of(ui, kept_name)
        assert "guest" in row and "Pika Python Client Library" in row and "AMQP 0-9-1" in row, row
        ui.shot("list")
        # One vhost's connections come from /api/vhosts/{vhost}/connections.
        Select(ui.find("#vhost-filter")).select_by_value("/")
        ui.wait_text("In virtual host /")
        ui.wait_text(kept_name, css="table.list")
        Select(ui.find("#vhost-filter")).select_by_value("")

        # The connection's page: its facts, its client properties and its one channel.
        ui.go(f"#/connections/{q(kept_key)}")
        ui.wait_text(kept_name, css="#client-properties")
        properties = ui.text("#client-properties")
        assert "connection_name" in properties and "Pika Python Client Library" in properties
        assert "publisher_confirms" in properties  # capabilities, shown as a table of their own
        facts = ui.text("#connection-facts")
        assert "guest" in facts and "Heartbeat" in facts
        ui.wait_text(f"{kept_key} (1)", css="#connection-channels")
        assert ui.find("[data-chart='Data rates']").is_displayed()
        ui.shot("connection")

        # The channels list, and the channel's own page.
        ui.go("#/channels")
        ui.wait_text(f"{kept_key} (1)", css="table.list")
        ui.shot("channels")
        ui.go(f"#/channels/{q(kept_key + ' (1)')}")
        ui.wait_text("No consumers on this channel.", css="#channel-consumers")
        assert "guest" in ui.text("#channel-facts")
        ui.shot("channel")

        # Close the other one through its page, with a reason.
        ui.go(f"#/connections/{q(closed_key)}")
        ui.fill("close-connection", reason="Maintenance from the web UI")
        ui.shot("close-form")
        ui.click_button("Close connection", within="form#close-connection")
        ui.accept_confirm()
        ui.wait_text("Connection closed.", css="#toasts")
        assert ui.driver.current_url.endswith("#/connections")

        def closed_by_broker():
            try:
                closed.process_data_events(time_limit=0.2)
            except pika.exceptions.ConnectionClosedByBroker as error:
                return error
            return None
        error = eventually(closed_by_broker)
        assert error.reply_code == 320, error
        assert "Maintenance from the web UI" in error.reply_text, error.reply_text

        # The list drops it on its next refresh; the other one stays.
        eventually(lambda: closed_name not in ui.text("table.list"), timeout=20)
        assert kept_name in ui.text("table.list")
        assert all(c.get("user_provided_name") != closed_name for c in api.get("/api/connections"))
        ui.shot("closed")

        # Phone width: the list scrolls inside its own box, the page does not.
        ui.driver.set_window_size(390, 844)
        ui.wait_text(kept_name, css="table.list")
        ui.shot("phone-list")
    finally:
        for connection in (kept, closed):
            if connection.is_open:
                connection.close()
