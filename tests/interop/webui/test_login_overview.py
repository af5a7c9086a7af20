"""Signing in and out, the tag rules, and the overview's live figures."""

import re

from conftest import eventually, unique


def test_login_shows_the_overview_and_logout_returns_to_the_form(ui):
    ui.login()
    text = ui.wait_text("Totals")
    assert "Message rates" in text and "Queued messages" in text
    ui.wait_text(re.compile(r"Memory\s+.*high watermark"))
    assert "guest (administrator)" in ui.text("#whoami")
    ui.shot("overview")
    ui.click_button("Log out", within="header")
    ui.wait_text("You are logged out.")
    assert ui.find("#login-username").is_displayed()


def test_wrong_password_is_refused_with_a_clear_message(ui):
    ui.login("guest", "not-the-password")
    ui.wait_text("Login failed: wrong user name or password.")
    ui.shot("refused")


def test_a_user_without_a_management_tag_cannot_sign_in(ui, api):
    name = unique("plain")
    api.put(f"/api/users/{name}", {"password": "pw", "tags": ""})
    try:
        ui.login(name, "pw")
        ui.wait_text("Login refused")
        ui.shot("no-tag")
    finally:
        api.delete(f"/api/users/{name}")


def test_the_overview_counts_a_new_queue_and_its_messages(ui, api, amqp):
    ui.login()
    ui.wait_text("Totals")
    before = int(ui.find("[data-total='queues'] .value").text.replace(",", ""))
    name = unique("ov")
    channel = amqp.channel()
    channel.queue_declare(name, auto_delete=False)
    try:
        for _ in range(3):
            channel.basic_publish("", name, b"x")
        # No reload: the page's own refresh (every 5 s by default) brings the new figures.
        def shown(total):
            return int(ui.find(f"[data-total='{total}'] .value").text.replace(",", ""))
        eventually(lambda: shown("queues") >= before + 1 and shown("ready") >= 3, timeout=20)
        ui.shot("counted")
    finally:
        channel.queue_delete(name)
