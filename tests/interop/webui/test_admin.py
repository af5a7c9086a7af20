"""Administration through the forms: users with tags, vhosts, permissions, vhost and user
limits and policies, checked through the API; what a monitoring user sees (lists, no forms); and the
import and export of a RabbitMQ definitions file."""

import json
import os
import re
import shutil
import tempfile

from selenium.webdriver.support.ui import Select

from conftest import eventually, q, unique


def row_text(ui, key):
    """The text of the list row whose key is `key` (data-key of table rows)."""
    return eventually(lambda: next((r.text for r in ui.finds(f"tr[data-key='{key}']")), None))


def test_users_vhosts_permissions_limits_and_the_monitoring_view(ui, api):
    user, vhost = unique("webui-user"), unique("webui-vh")
    try:
        ui.login()
        ui.go("#/admin/users")
        ui.find("form#user-form")
        assert ui.find("nav.tabs a[aria-current='page']").text == "Users"
        ui.fill("user-form", name=user, password="pw-secret-1")
        ui.click_button("+ monitoring", within="form#user-form")
        assert ui.field("user-form", "tags").get_attribute("value") == "monitoring"
        ui.shot("user-form")
        ui.submit("user-form")
        ui.wait_text("User saved.", css="#toasts")
        assert "monitoring" in row_text(ui, user)
        assert api.get(f"/api/users/{q(user)}")["tags"] == ["monitoring"]
        ui.shot("user-added")

        ui.go("#/admin/vhosts")
        ui.fill("vhost-form", name=vhost, description="made by the web UI test", tags="test, webui")
        ui.submit("vhost-form")
        ui.wait_text("Virtual host saved.", css="#toasts")
        assert "made by the web UI test" in row_text(ui, vhost)
        made = api.get(f"/api/vhosts/{q(vhost)}")
        assert made["description"] == "made by the web UI test" and made["tags"] == ["test", "webui"]
        ui.shot("vhost-added")

        # The user's page: give the user a permission in the new vhost.
        ui.go(f"#/admin/users/{q(user)}")
        ui.fill("permission-form", vhost=vhost, configure="^webui-", write=".*", read=".*")
        ui.submit("permission-form")
        ui.wait_text("^webui-", css="#user-permissions")
        permission = api.get(f"/api/permissions/{q(vhost)}/{q(user)}")
        assert (permission["configure"], permission["write"], permission["read"]) == ("^webui-", ".*", ".*")
        ui.shot("permission-set")

        # Its limits: 3 connections and 10 channels, then only the channel limit.
        ui.fill("user-limits-form", **{"max-connections": 3, "max-channels": 10})
        ui.submit("user-limits-form")
        ui.wait_text("Max connections\n3", css="#user-limits")
        assert api.get(f"/api/user-limits/{q(user)}") == [
            {"user": user, "value": {"max-connections": 3, "max-channels": 10}}]
        ui.shot("user-limits-set")
        ui.go("#/admin/limits")
        assert "10" in eventually(lambda: next((r.text for r in ui.finds(f"#all-user-limits tr[data-key='{user}']")), None))
        ui.go(f"#/admin/users/{q(user)}")
        ui.field("user-limits-form", "max-connections").clear()
        ui.submit("user-limits-form")
        ui.wait_text("Max connections\nno limit", css="#user-limits")
        assert api.get(f"/api/user-limits/{q(user)}") == [{"user": user, "value": {"max-channels": 10}}]

        # The vhost's page: a limit of 5 queues, then no limit again.
        ui.go(f"#/admin/vhosts/{q(vhost)}")
        ui.wait_text(user, css="#vhost-permissions")
        ui.fill("vhost-limits-form", **{"max-queues": 5})
        ui.submit("vhost-limits-form")
        ui.wait_text("Limits saved.", css="#toasts")
        ui.wait_text("Max queues\n5", css="#vhost-limits")
        assert api.get(f"/api/vhost-limits/{q(vhost)}") == [{"vhost": vhost, "value": {"max-queues": 5}}]
        ui.shot("limit-set")
        ui.go("#/admin/limits")
        assert "5" in row_text(ui, vhost)
        ui.go(f"#/admin/vhosts/{q(vhost)}")
        ui.field("vhost-limits-form", "max-queues").clear()
        ui.submit("vhost-limits-form")
        ui.wait_text("Max queues\nno limit", css="#vhost-limits")
        assert api.get(f"/api/vhost-limits/{q(vhost)}") == []
        ui.shot("limit-cleared")

        # The monitoring user sees the lists but none of the forms.
        ui.login(user, "pw-secret-1")
        ui.wait_text("Totals")
        assert f"{user} (monitoring)" in ui.text("#whoami")
        ui.go("#/admin/users")
        ui.wait_text("Users are shown to administrators only")
        assert not ui.finds("form#user-form")
        ui.go("#/admin/vhosts")
        assert "made by the web UI test" in row_text(ui, vhost)
        assert not ui.finds("form#vhost-form")
        ui.shot("monitoring-vhosts")
        ui.go(f"#/admin/vhosts/{q(vhost)}")
        ui.wait_text("Max queues", css="#vhost-limits")
        assert not ui.finds("form#vhost-limits-form") and not ui.finds("form#permission-form")
        assert not [b for b in ui.finds("main button") if b.text == "Delete virtual host"]
        ui.go("#/admin/policies")
        ui.wait_text(re.compile(r"\d+ policies"), css=".list-table .count")
        assert not ui.finds("form#policy-form")
        ui.go("#/admin/definitions")
        ui.wait_text("Definitions are shown to administrators only")
        assert not ui.finds("form#definitions-import")
        ui.shot("monitoring-policies")

        # Back as the administrator: delete both through their pages.
        ui.login()
        ui.wait_text("Totals")
        ui.go(f"#/admin/vhosts/{q(vhost)}")
        assert vhost in [o.get_attribute("value") for o in ui.finds("#vhost-filter option")]
        ui.click_button("Delete virtual host")
        ui.accept_confirm()
        ui.wait_text(f"Virtual host {vhost} deleted.", css="#toasts")
        assert "error" in api.call("GET", f"/api/vhosts/{q(vhost)}")
        header_vhosts = [o.get_attribute("value") for o in ui.finds("#vhost-filter option")]
        assert "/" in header_vhosts and vhost not in header_vhosts
        ui.go(f"#/admin/users/{q(user)}")
        ui.click_button("Delete user")
        ui.accept_confirm()
        ui.wait_text(f"User {user} deleted.", css="#toasts")
        assert "error" in api.call("GET", f"/api/users/{q(user)}")
        ui.shot("deleted")
    finally:
        api.delete(f"/api/users/{q(user)}")
        api.delete(f"/api/vhosts/{q(vhost)}")


def test_a_policy_made_with_the_form_keeps_its_number(ui, api):
    name = unique("webui-policy")
    try:
        ui.login()
        ui.go("#/admin/policies")
        ui.fill("policy-form", vhost="/", name=name, pattern="^webui-", **{"apply-to": "queues", "priority": 3})
        ui.type("form#policy-form [name='definition-key']", "max-length")
        ui.finds("form#policy-form [name='definition-value']")[0].send_keys("10")
        # Picking a known key sets its type: max-length goes out as a number.
        kind = Select(ui.finds("form#policy-form [name='definition-type']")[0])
        assert kind.first_selected_option.get_attribute("value") == "number"
        ui.shot("policy-form")
        ui.submit("policy-form")
        ui.wait_text("Policy saved.", css="#toasts")
        shown = row_text(ui, f"//{name}")
        assert "max-length: 10" in shown and "queues" in shown and "^webui-" in shown
        policy = api.get(f"/api/policies/%2F/{q(name)}")
        assert policy["definition"] == {"max-length": 10}
        assert policy["apply-to"] == "queues" and policy["pattern"] == "^webui-" and policy["priority"] == 3
        ui.shot("policy-listed")

        # A definition Hare refuses comes back as the API's reason.
        ui.fill("policy-form", vhost="/", name=name, pattern="^webui-")
        ui.type("form#policy-form [name='definition-key']", "max-length")
        ui.finds("form#policy-form [name='definition-value']")[0].send_keys("-4")
        ui.submit("policy-form")
        ui.wait_text("400", css="#toasts")
        ui.shot("policy-refused")

        ui.click_button("Delete", within=f"tr[data-key='//{name}']")
        ui.accept_confirm()
        eventually(lambda: "error" in (api.call("GET", f"/api/policies/%2F/{q(name)}") or {}))
        eventually(lambda: not ui.finds(f"tr[data-key='//{name}']"))
        ui.shot("policy-deleted")
    finally:
        api.delete(f"/api/policies/%2F/{q(name)}")


def definitions_file(api, names):
    """A definitions file as RabbitMQ 3.13 exports it, with the objects named in `names`."""
    vhost, user, queue, exchange, policy = (names[k] for k in ("vhost", "user", "queue", "exchange", "policy"))
    password_hash = api.get("/api/auth/hash_password/imported-pw")["ok"]
    return {
        "rabbit_version": "3.13.7",
        "rabbitmq_version": "3.13.7",
        "product_name": "RabbitMQ",
        "product_version": "3.13.7",
        "users": [{"name": user, "password_hash": password_hash,
                   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["management"], "limits": {}}],
        "vhosts": [{"name": vhost, "description": "imported", "tags": [], "metadata": {"description": "imported", "tags": []}}],
        "permissions": [{"user": user, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"}],
        "topic_permissions": [],
        "parameters": [],
        "global_parameters": [],
        "policies": [{"vhost": vhost, "name": policy, "pattern": "^webui-", "apply-to": "queues",
                      "definition": {"max-length": 100}, "priority": 1}],
        "queues": [{"name": queue, "vhost": vhost, "durable": True, "auto_delete": False,
                    "arguments": {"x-message-ttl": 60000, "x-queue-type": "classic"}}],
        "exchanges": [{"name": exchange, "vhost": vhost, "type": "topic", "durable": True,
                       "auto_delete": False, "internal": False, "arguments": {}}],
        "bindings": [{"source": exchange, "vhost": vhost, "destination": queue, "destination_type": "queue",
                      "routing_key": "orders.#", "arguments": {}}],
    }


def test_definitions_import_and_export(ui, api):
    names = {k: unique(f"webui-def-{k}") for k in ("vhost", "user", "queue", "exchange", "policy")}
    vhost, v = names["vhost"], q(names["vhost"])
    work = tempfile.mkdtemp(prefix="webui-defs-")
    good = os.path.join(work, "definitions.json")
    bad = os.path.join(work, "not-json.json")
    with open(good, "w") as out:
        json.dump(definitions_file(api, names), out)
    with open(bad, "w") as out:
        out.write("this is not JSON {")
    downloads = None
    try:
        ui.login()
        ui.go("#/admin/definitions")
        ui.find("form#definitions-import [name='file']").send_keys(good)
        ui.shot("import-chosen")
        ui.submit("definitions-import")
        ui.wait_text("Imported definitions.json", css="#import-result")
        assert "1 queue," in ui.text("#import-result")
        ui.shot("imported")

        assert api.get(f"/api/vhosts/{v}")["description"] == "imported"
        assert api.get(f"/api/users/{q(names['user'])}")["tags"] == ["management"]
        assert api.get(f"/api/permissions/{v}/{q(names['user'])}")["configure"] == ".*"
        queue = api.get(f"/api/queues/{v}/{q(names['queue'])}")
        assert queue["durable"] is True and queue["arguments"]["x-message-ttl"] == 60000
        assert api.get(f"/api/exchanges/{v}/{q(names['exchange'])}")["type"] == "topic"
        bindings = api.get(f"/api/bindings/{v}/e/{q(names['exchange'])}/q/{q(names['queue'])}")
        assert [b["routing_key"] for b in bindings] == ["orders.#"]
        assert api.get(f"/api/policies/{v}/{q(names['policy'])}")["definition"] == {"max-length": 100}

        # Export the vhost: the browser saves the file the page builds.
        downloads = tempfile.mkdtemp(prefix="webui-export-")
        try:
            ui.driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
        except Exception:  # noqa: BLE001 - older Chromium only knows the Page domain's command
            ui.driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
        ui.driver.refresh()  # the vhost selectors list the imported vhost
        Select(ui.find("#export-vhost")).select_by_value(vhost)
        ui.click_button("Download definitions")
        link = ui.find("#definitions-download")
        assert link.get_attribute("href").startswith("blob:")
        assert link.get_attribute("download").endswith(".json")

        def saved():
            files = [f for f in os.listdir(downloads) if f.endswith(".json")]
            return files[0] if files else None
        with open(os.path.join(downloads, eventually(saved))) as saved_file:
            exported = json.load(saved_file)
        assert [x["name"] for x in exported["queues"]] == [names["queue"]]
        assert exported["queues"][0]["arguments"]["x-message-ttl"] == 60000
        assert "users" not in exported  # a one-vhost export holds no server-wide objects
        ui.shot("exported")

        # A file that is not JSON is refused, with the API's reason on the page.
        ui.find("form#definitions-import [name='file']").send_keys(bad)
        ui.submit("definitions-import")
        refused = ui.wait_text("not-json.json was refused", css="#import-result")
        assert "400" in refused and "not_json" in refused
        assert "400" in ui.toast()
        ui.shot("refused")
    finally:
        api.delete(f"/api/vhosts/{v}")
        api.delete(f"/api/users/{q(names['user'])}")
        shutil.rmtree(work, ignore_errors=True)
        if downloads:
            shutil.rmtree(downloads, ignore_errors=True)


def test_admin_pages_at_phone_width(ui):
    ui.login()
    ui.driver.set_window_size(390, 844)
    ui.go("#/admin/users")
    ui.wait_text("guest", css="table.list")
    ui.find("form#user-form")
    # Nothing wider than the screen but the tables, which scroll in their own box.
    width = ui.driver.execute_script("return document.documentElement.scrollWidth")
    assert width <= 390, width
    ui.shot("phone-users")
    ui.go("#/admin/policies")
    ui.find("form#policy-form")
    eventually(lambda: ui.driver.execute_script("return document.documentElement.scrollWidth") <= 390)
    ui.shot("phone-policies")


def test_every_admin_tab_shows_its_content(ui):
    ui.login()
    ui.wait_text("Totals")
    expected = {
        "users": ("Users", "form#user-form"),
        "vhosts": ("Virtual hosts", "form#vhost-form"),
        "permissions": ("Permissions", "form#permission-form"),
        "policies": ("Policies", "form#policy-form"),
        "operator-policies": ("Operator policies", "form#operator-policy-form"),
        "limits": ("Limits", "#all-limits"),
        "definitions": ("Definitions", "form#definitions-import"),
    }
    for tab, (title, content) in expected.items():
        ui.go(f"#/admin/{tab}")
        ui.find(content)
        assert ui.text("main h1") == title
        assert ui.find("nav.tabs a[aria-current='page']").text == title
        assert not [e for e in ui.finds("main .error") if e.is_displayed()], tab
        if tab == "permissions":
            assert "guest" in ui.text("#all-permissions")
        if tab == "operator-policies":
            ui.shot("operator-policies")
