#!/usr/bin/env python3
"""The official `rabbitmqadmin` v2 CLI against a broker's management HTTP API.

Every check runs real `rabbitmqadmin` commands (host, port and credentials as flags, no
config file, `--table-style markdown` output parsed into rows) and asserts on what they
print: names present or absent, column values, counts, message bodies. AMQP fixtures
(one connection with two channels, an exclusive queue and a consumer) come from pika.

Broker: HARE_MANAGEMENT_URL (API base without /api, e.g. http://127.0.0.1:15672; a path
such as http://h:p/mgmt becomes --path-prefix /mgmt/api; credentials from its userinfo,
else HARE_MANAGEMENT_USER/HARE_MANAGEMENT_PASSWORD, else AMQP_URL's) and AMQP_URL.
Objects: vhost `rmqadmin-suite`, user `rmqadmin-suite-user`, everything else named
`rmqadmin-suite-*`; removed before and after the run.

A check whose prerequisite check failed is skipped (reported as such). Prints one line
per check and, last, "rabbitmqadmin: N passed, M failed, K skipped" where M counts
failures not listed in --known-failures. Exit status 1 if M > 0.

  rabbitmqadmin_suite.py [--known-failures FILE] [--only NAME ...] [--list] [--log FILE]
"""
import argparse
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from base64 import b64encode
from urllib.parse import unquote, urlsplit

import pika
import pika.exceptions

ADMIN = os.environ.get("RABBITMQADMIN", os.path.expanduser("~/.cargo/bin/rabbitmqadmin"))
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
MGMT_URL = os.environ.get("HARE_MANAGEMENT_URL", "http://127.0.0.1:15672")
# RabbitMQ's management stats lag by up to one collection interval (5 s): listings of
# message counts, consumers, policies and connection states are polled this long.
EVENTUAL = float(os.environ.get("RMQADMIN_EVENTUAL_TIMEOUT", "15"))
CMD_TIMEOUT = float(os.environ.get("RMQADMIN_COMMAND_TIMEOUT", "30"))
TIMEOUTS = {"in_check": False}

_amqp = urlsplit(AMQP_URL)
AMQP_HOST = _amqp.hostname or "127.0.0.1"
AMQP_PORT = _amqp.port or 5672
AMQP_USER = unquote(_amqp.username or "guest")
AMQP_PASS = unquote(_amqp.password or "guest")
_p = _amqp.path[1:] if _amqp.path.startswith("/") else _amqp.path
AMQP_VHOST = unquote(_p) if _p else "/"

_m = urlsplit(MGMT_URL if "//" in MGMT_URL else "http://" + MGMT_URL)
M_TLS = _m.scheme == "https"
M_HOST = _m.hostname or "127.0.0.1"
M_PORT = _m.port or (443 if M_TLS else 15672)
M_PREFIX = _m.path.rstrip("/") + "/api" if _m.path.strip("/") else None
M_USER = unquote(_m.username) if _m.username else os.environ.get("HARE_MANAGEMENT_USER", AMQP_USER)
M_PASS = unquote(_m.password or "") if _m.username else os.environ.get("HARE_MANAGEMENT_PASSWORD", AMQP_PASS)
M_BASE = f"{_m.scheme or 'http'}://{M_HOST}:{M_PORT}{M_PREFIX or '/api'}"

RUN = uuid.uuid4().hex[:6]
VH = "rmqadmin-suite"
USER = "rmqadmin-suite-user"
USER_PASS = "rmqadmin-suite-secret"
Q1, Q2 = "rmqadmin-suite-q1", "rmqadmin-suite-q2"
X, X2 = "rmqadmin-suite-x", "rmqadmin-suite-x2"
POL, OPOL = "rmqadmin-suite-policy", "rmqadmin-suite-op-policy"
DESCR = "rmqadmin suite vhost"
CONN_NAME = f"rmqadmin-suite-conn-{RUN}"
AMQP_Q = f"rmqadmin-suite-amqp-{RUN}"
CTAG = f"rmqadmin-suite-ctag-{RUN}"

# Fields rabbitmqadmin 2.35.0 (rabbitmq_http_client 0.92.0) cannot parse a list item
# without (no serde default): used only to explain "error decoding response body".
REQUIRED = {
    "nodes": ["name", "being_drained"],
    "consumers": ["consumer_tag", "active", "ack_required", "prefetch_count", "exclusive",
                  "arguments", "consumer_timeout", "queue"],
    "connections": ["name", "node", "protocol", "user", "connected_at", "client_properties"],
    "channels": ["number", "name", "connection_details", "vhost", "state", "consumer_count",
                 "confirm", "prefetch_count", "messages_unacknowledged", "messages_unconfirmed"],
    "queues": ["name", "vhost", "type", "durable", "auto_delete", "exclusive", "arguments"],
    "exchanges": ["name", "vhost", "type", "durable", "auto_delete", "arguments"],
    "bindings": ["vhost", "source", "destination", "destination_type", "routing_key", "arguments"],
    "vhosts": ["name"],
    "users": ["name", "tags"],
    "permissions": ["user", "vhost", "configure", "read", "write"],
    "policies": ["name", "vhost", "pattern", "apply-to", "priority", "definition"],
    "operator-policies": ["name", "vhost", "pattern", "apply-to", "priority", "definition"],
    "vhost-limits": ["vhost", "value"],
    "overview": ["cluster_name", "node", "erlang_full_version", "erlang_version",
                 "rabbitmq_version", "product_name", "product_version",
                 "statistics_db_event_queue", "churn_rates", "queue_totals", "object_totals",
                 "message_stats", "listeners"],
    "definitions": ["users", "vhosts", "permissions", "parameters", "policies", "queues",
                    "exchanges", "bindings"],
}

LOG = None


def log(*parts):
    if LOG:
        LOG.write(" ".join(str(p) for p in parts) + "\n")
        LOG.flush()


class CheckFailed(AssertionError):
    pass


class CommandFailed(CheckFailed):
    """rabbitmqadmin exited non-zero where it should not: not retried by eventually()."""


# ---------------------------------------------------------------------------- CLI runner

class Result:
    def __init__(self, args, rc, out, err):
        self.args, self.rc, self.out, self.err = args, rc, out, err

    def http_trace(self):
        """The --verbose lines: requests (with a compacted request body) and error responses."""
        keep, body = [], None
        for line in self.err.splitlines():
            if line.startswith("[rabbitmq_http_client"):
                if body is not None:
                    keep[-1] += " " + " ".join(body)[:300]
                    body = None
                keep.append(line.split("] ", 1)[-1])
                if line.rstrip().endswith("Request body:"):
                    body = []
            elif body is not None:
                body.append(line.strip())
            elif "Request body:" in line and keep:
                keep[-1] += " body:"
                body = []
        if body is not None and keep:
            keep[-1] += " " + " ".join(body)[:300]
        return "\n".join(keep[-6:])


def admin(*args, vhost=None, ok=True):
    """Runs rabbitmqadmin; with ok=True a non-zero exit fails the check with the HTTP trace."""
    cmd = [ADMIN, "--host", M_HOST, "--port", str(M_PORT),
           "--username", M_USER, "--password", M_PASS,
           "--table-style", "markdown", "--verbose", "--timeout", str(int(max(1, CMD_TIMEOUT - 5)))]
    if M_PREFIX:
        cmd += ["--path-prefix", M_PREFIX]
    if M_TLS:
        cmd += ["--use-tls"]
    if vhost is not None:
        cmd += ["--vhost", vhost]
    cmd += list(args)
    shown = "rabbitmqadmin " + " ".join(shlex.quote(a) for a in args)
    if vhost is not None:
        shown = f"rabbitmqadmin --vhost {shlex.quote(vhost)} " + shown[len("rabbitmqadmin "):]
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=CMD_TIMEOUT)
        r = Result(shown, p.returncode, p.stdout, p.stderr)
    except subprocess.TimeoutExpired as e:
        out, err = e.stdout or b"", e.stderr or b""
        out = out.decode(errors="replace") if isinstance(out, bytes) else out
        err = err.decode(errors="replace") if isinstance(err, bytes) else err
        r = Result(shown, 124, out, err + f"\n(timed out after {CMD_TIMEOUT:.0f}s)")
        TIMEOUTS["in_check"] = True
    log(f"$ {shown}\n  rc={r.rc}\n--- stdout\n{r.out}\n--- stderr\n{r.err}")
    if ok and r.rc != 0:
        raise CommandFailed(f"`{shown}` exited {r.rc}: {explain(r)}")
    return r


def explain(r):
    """rabbitmqadmin's own error line, the HTTP exchange, and for a body it could not
    decode, the replayed GET with the fields it requires but did not get."""
    err = r.err.splitlines()
    last = max([i for i, l in enumerate(err) if l.startswith("[rabbitmq_http_client")], default=-1)
    msg = [l for l in r.out.splitlines() + err[last + 1:] if l.strip()]
    text = " | ".join(msg[-3:])
    trace = r.http_trace()
    if trace:
        text += "\n      " + trace.replace("\n", "\n      ")
    m = re.search(r"error decoding response body for url \((\S+?)\)", r.out + r.err)
    if m:
        text += "\n      " + diagnose_decode(m.group(1))
    return text


def raw_get(url):
    """GET with urllib (diagnostics and the RabbitMQ 3.10 allowances only)."""
    req = urllib.request.Request(url)
    req.add_header("Authorization", "Basic " + b64encode(f"{M_USER}:{M_PASS}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except Exception as e:  # noqa: BLE001
        return None, f"{type(e).__name__}: {e}"


def diagnose_decode(url):
    status, body = raw_get(url)
    head = f"GET {url} -> {status}"
    try:
        doc = json.loads(body)
    except ValueError:
        return f"{head}; body is not JSON: {body[:300]!r}"
    path = urlsplit(url).path
    key = None
    for k in REQUIRED:
        if f"/api/{k}" in path:
            key = k
            break
    items = doc if isinstance(doc, list) else [doc]
    if key is None or not items:
        return f"{head}; body: {body[:300]}"
    missing = sorted({f for it in items if isinstance(it, dict) for f in REQUIRED[key] if f not in it})
    if missing:
        return f"{head}; missing fields rabbitmqadmin requires: {missing}; first item: {json.dumps(items[0])[:400]}"
    # Otherwise a type differs; most often null where rabbitmqadmin has a plain (non-Option)
    # field with a serde default, which covers an absent key but not null.
    nulls = sorted({f for it in items if isinstance(it, dict) for f, v in it.items() if v is None})
    return (f"{head}; every required field present, so a value has the wrong type; null-valued "
            f"fields (null is accepted only for Option fields): {nulls}; first item: {json.dumps(items[0])[:300]}")


def table(r):
    """Rows of a markdown table as dicts (header = first row). Continuation lines of
    multi-line cells (the first two cells empty; in a two-column table such as a limits
    listing, the first) are joined to the previous row."""
    rows, header = [], None
    for line in r.out.splitlines():
        line = line.rstrip()
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if all(re.fullmatch(r"-*", c.replace(":", "")) for c in cells) and any(cells):
            continue
        if header is None:
            header = cells
            continue
        if rows and len(cells) >= 2 and not cells[0] and (len(cells) == 2 or not cells[1]):
            prev = rows[-1]
            for h, c in zip(header, cells):
                if c:
                    prev[h] = (prev[h] + "\n" + c) if prev[h] else c
            continue
        rows.append(dict(zip(header, cells)))
    return rows


def kv(r):
    """Two-column key/value tables (show overview, failed health checks)."""
    out = {}
    for line in r.out.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and not re.fullmatch(r"-*", cells[0]):
            out[cells[0]] = cells[1]
    return out


def listing(what, vhost=None, **match):
    rows = table(admin("list", what, vhost=vhost))
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def row(rows, what, **match):
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    if not found:
        raise CheckFailed(f"no {what} row with {match}; rows: {brief(rows)}")
    return found[0]


def brief(rows, limit=8):
    s = "; ".join(json.dumps(r, ensure_ascii=False) for r in rows[:limit])
    return (s[:1500] + "…") if len(s) > 1500 else (s or "(none)")


def expect(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def eventually(fn, timeout=EVENTUAL, step=0.5):
    """Retries fn until it stops failing an assertion (management stats lag)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except CommandFailed:
            raise
        except CheckFailed:
            if time.monotonic() > deadline:
                raise
            time.sleep(step)


def args_of(cell):
    """'k1: v1\\nk2: v2' (arguments / definition / limits cells) → dict of strings."""
    out = {}
    for line in (cell or "").splitlines():
        k, sep, v = line.partition(": ")
        if sep:
            out[k.strip()] = v.strip()
    return out


def version_tuple(v):
    return tuple(int(x) for x in re.findall(r"\d+", v or "")[:3]) or (0,)


# ---------------------------------------------------------------------------- AMQP fixture

class AmqpClient:
    """One pika connection owned by a thread: channel 1 (prefetch 7) consumes from an
    exclusive queue bound to amq.topic, channel 2 is in confirm mode. Records how the
    connection ended."""

    def __init__(self):
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.ended = threading.Event()
        self.error = None
        self.closed_by = None
        self.local_port = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(15):
            raise CheckFailed("AMQP fixture: connection not ready within 15 s")
        if self.error:
            raise CheckFailed(f"AMQP fixture failed: {self.error}")

    def _run(self):
        conn = None
        try:
            params = pika.URLParameters(AMQP_URL)
            params.client_properties = {"connection_name": CONN_NAME}
            params.heartbeat = 0
            conn = pika.BlockingConnection(params)
            self.local_port = conn._impl._transport._sock.getsockname()[1]
            ch = conn.channel()
            ch.basic_qos(prefetch_count=7)
            ch.queue_declare(AMQP_Q, exclusive=True)
            ch.queue_bind(AMQP_Q, "amq.topic", "rmqadmin-suite.#")
            ch.basic_consume(AMQP_Q, lambda *a: None, consumer_tag=CTAG)
            ch2 = conn.channel()
            ch2.confirm_delivery()
            self.ready.set()
            while not self.stop.is_set():
                conn.process_data_events(time_limit=0.2)
        except pika.exceptions.ConnectionClosedByBroker as e:
            self.closed_by = (e.reply_code, e.reply_text)
        except Exception as e:  # noqa: BLE001
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self.ready.set()
            if conn is not None and conn.is_open:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass
            self.ended.set()

    def close(self):
        self.stop.set()
        self.ended.wait(5)


# ---------------------------------------------------------------------------- state

class State:
    def __init__(self):
        self.amqp_client = None
        self.amqp_error = None
        self.product = ("", "")
        self.tmp = tempfile.mkdtemp(prefix="rmqadmin-suite.")
        self.export_file = os.path.join(self.tmp, "definitions.json")
        self.vhost_export_file = os.path.join(self.tmp, f"definitions-{VH}.json")

    def amqp(self):
        if self.amqp_error:
            raise CheckFailed(self.amqp_error)
        if self.amqp_client is None:
            try:
                self.amqp_client = AmqpClient()
            except CheckFailed as e:
                self.amqp_error = str(e)
                raise
        return self.amqp_client

    def old_rabbitmq(self):
        """RabbitMQ before 3.13 (rabbitmqadmin v2 supports 3.13 and 4.x)."""
        name, version = self.product
        return name == "RabbitMQ" and version_tuple(version) < (3, 13)


S = State()


def allowance_missing_field(r, path, field, what):
    """RabbitMQ < 3.13 lacks a field rabbitmqadmin v2 requires, so the command cannot
    decode the listing. Accepted only then, and only for exactly that cause; returns
    the raw items (read with urllib) for the same assertions."""
    if not (S.old_rabbitmq() and "error decoding response body" in (r.out + r.err)):
        raise CommandFailed(f"`{r.args}` exited {r.rc}: {explain(r)}")
    status, body = raw_get(M_BASE + path)
    items = json.loads(body) if status == 200 else None
    expect(isinstance(items, list), f"GET /api{path} -> {status}: {body[:300]}")
    expect(all(field not in it for it in items),
           f"`{r.args}` cannot decode {path} although every item has `{field}`")
    note(f"{S.product[0]} {S.product[1]} has no `{field}` in /api{path} (added in 3.13), so "
         f"rabbitmqadmin v2 cannot decode it; {what} checked in the raw response instead")
    return items


NOTES = []


def note(msg):
    NOTES.append(msg)


# ---------------------------------------------------------------------------- checks: read-only

def c_show_overview():
    ov = kv(admin("show", "overview"))
    for key in ("Product name", "Product version", "RabbitMQ version", "Erlang version"):
        expect(ov.get(key), f"overview has no {key!r}: {ov}")
    for key in ("Connections (total)", "Queues and streams (total)", "Consumers (total)",
                "Messages (total)"):
        expect(re.fullmatch(r"\d+", ov.get(key, "")), f"overview {key!r} is not a count: {ov.get(key)!r}")
    S.product = (ov["Product name"], ov["Product version"])
    log(f"product: {S.product}")


def c_list_nodes():
    r = admin("list", "nodes", ok=False)
    if r.rc == 0:
        rows = table(r)
        expect(rows and rows[0].get("name"), f"no node listed: {r.out[:500]}")
        if "uptime" in rows[0]:
            expect(re.fullmatch(r"\d+", rows[0]["uptime"]), f"uptime {rows[0]['uptime']!r}")
        return
    items = allowance_missing_field(r, "/nodes", "being_drained", "the node list")
    expect(items and items[0].get("name"), f"no node in /api/nodes: {items}")


def c_list_vhosts():
    row(listing("vhosts"), "vhost", name=AMQP_VHOST)


def c_list_users():
    u = row(listing("users"), "user", name=M_USER)
    expect("administrator" in u.get("tags", ""), f"{M_USER} tags {u.get('tags')!r}")
    expect(u.get("password_hash"), f"{M_USER} has no password_hash")


def c_list_permissions():
    p = row(listing("permissions"), "permission", user=AMQP_USER, vhost=AMQP_VHOST)
    for k in ("configure", "write", "read"):
        expect(k in p, f"permission row has no {k}: {p}")


def c_list_exchanges():
    rows = listing("exchanges", vhost=AMQP_VHOST)
    for name, typ in (("", "direct"), ("amq.direct", "direct"), ("amq.fanout", "fanout"),
                      ("amq.topic", "topic"), ("amq.headers", "headers")):
        x = row(rows, "exchange", name=name, vhost=AMQP_VHOST)
        expect(x.get("exchange_type") == typ, f"exchange {name!r} type {x.get('exchange_type')!r}, want {typ}")
        expect(x.get("durable") == "true", f"exchange {name!r} not durable: {x}")


def c_list_queues():
    S.amqp()

    def check():
        q = row(listing("queues", vhost=AMQP_VHOST), "queue", name=AMQP_Q)
        expect(q.get("exclusive") == "true", f"exclusive={q.get('exclusive')!r}")
        expect(q.get("durable") == "false", f"durable={q.get('durable')!r}")
        expect(q.get("consumer_count") == "1", f"consumer_count={q.get('consumer_count')!r}, want 1")
    eventually(check)


def c_list_bindings():
    S.amqp()
    rows = [b for b in listing("bindings") if b.get("vhost") == AMQP_VHOST and b.get("destination") == AMQP_Q]
    b = row(rows, "binding", source="amq.topic", destination_type="queue")
    expect(b.get("routing_key") == "rmqadmin-suite.#", f"routing_key {b.get('routing_key')!r}")
    d = row(rows, "default-exchange binding", source="", destination_type="queue")
    expect(d.get("routing_key") == AMQP_Q, f"default binding routing_key {d.get('routing_key')!r}")
    expect(len(rows) == 2, f"want 2 bindings of {AMQP_Q}, got {brief(rows)}")


def c_list_policies():
    """Read-only: the listings parse (in the AMQP vhost, where the suite creates none)."""
    for what in ("policies", "operator_policies", "vhost_limits"):
        r = admin("list", what, vhost=AMQP_VHOST)
        expect(r.out.lstrip().startswith("|") or not r.out.strip(), f"`{r.args}` printed {r.out[:300]!r}")
        rows = table(r)
        expect(not [x for x in rows if x.get("name", "").startswith("rmqadmin-suite")],
               f"`{r.args}` lists suite objects before the suite made any: {brief(rows)}")


def c_definitions_export_readonly():
    """Read-only: a cluster-wide export with the required arrays, the AMQP vhost and the
    management user; neither the fixture's exclusive queue nor amq.* exchanges exported."""
    S.amqp()
    path = os.path.join(S.tmp, "definitions-readonly.json")
    admin("definitions", "export", "--file", path)
    d = load_json(path)
    for k in REQUIRED["definitions"]:
        expect(isinstance(d.get(k), list), f"export has no {k!r} array: keys {sorted(d)}")
    expect([v for v in d["vhosts"] if v.get("name") == AMQP_VHOST], f"{AMQP_VHOST} not in vhosts {d['vhosts']}")
    u = [u for u in d["users"] if u.get("name") == M_USER]
    expect(u and u[0].get("password_hash") and "administrator" in json.dumps(u[0].get("tags")),
           f"{M_USER} (administrator, with password_hash) not in users")
    expect(not [q for q in d["queues"] if q.get("name") == AMQP_Q], f"exclusive queue {AMQP_Q} exported")
    expect(not [x for x in d["exchanges"] if x.get("name", "").startswith("amq.") or x.get("name") == ""],
           "the default or amq.* exchanges exported")
    expect(not [b for b in d["bindings"] if b.get("destination") == AMQP_Q],
           f"bindings of the exclusive queue {AMQP_Q} exported")


def my_connection(rows):
    port = str(S.amqp().local_port)
    return row(rows, "connection", client_port=port)


def c_list_connections():
    S.amqp()

    def check():
        c = my_connection(listing("connections"))
        expect(c.get("username") == AMQP_USER, f"username {c.get('username')!r}")
        expect(c.get("protocol") == "AMQP 0-9-1", f"protocol {c.get('protocol')!r}")
        expect(c.get("state") == "running", f"state {c.get('state')!r}")
        expect(c.get("name", "").endswith(f":{AMQP_PORT}") or c.get("server_port") == str(AMQP_PORT),
               f"connection {c.get('name')!r} / server_port {c.get('server_port')!r} is not on port {AMQP_PORT}")
        expect(re.fullmatch(r"\d{13}", c.get("connected_at", "")), f"connected_at {c.get('connected_at')!r} (want ms)")
    eventually(check)


def c_list_channels():
    S.amqp()

    def check():
        cname = my_connection(listing("connections"))["name"]
        rows = [c for c in listing("channels") if c.get("name", "").startswith(cname + " (")]
        expect(len(rows) == 2, f"want 2 channels of {cname!r}, got {brief(rows)}")
        c1 = row(rows, "channel", name=f"{cname} (1)")
        c2 = row(rows, "channel", name=f"{cname} (2)")
        expect(c1.get("vhost") == AMQP_VHOST, f"channel 1 vhost {c1.get('vhost')!r}")
        expect(c1.get("prefetch_count") == "7", f"channel 1 prefetch_count {c1.get('prefetch_count')!r}")
        expect(c1.get("consumer_count") == "1", f"channel 1 consumer_count {c1.get('consumer_count')!r}")
        expect(c2.get("has_publisher_confirms_enabled") == "true",
               f"channel 2 confirm {c2.get('has_publisher_confirms_enabled')!r}")
        expect(c1.get("has_publisher_confirms_enabled") == "false",
               f"channel 1 confirm {c1.get('has_publisher_confirms_enabled')!r}")
    eventually(check)


def c_list_consumers():
    S.amqp()

    def check():
        r = admin("list", "consumers", vhost=AMQP_VHOST, ok=False)
        if r.rc == 0:
            c = row(table(r), "consumer", consumer_tag=CTAG)
            expect(c.get("queue_name", c.get("queue")) == AMQP_Q or AMQP_Q in json.dumps(c),
                   f"consumer {CTAG} not on {AMQP_Q}: {c}")
            return
        items = allowance_missing_field(r, "/consumers", "consumer_timeout", "the consumer")
        c = [i for i in items if i.get("consumer_tag") == CTAG]
        expect(c and c[0]["queue"]["name"] == AMQP_Q, f"consumer {CTAG} not in {items}")
    eventually(check)


def c_close_connection():
    client = S.amqp()
    cname = eventually(lambda: my_connection(listing("connections")))["name"]
    admin("close", "connection", "--name", cname)
    client.ended.wait(10)
    expect(client.ended.is_set(), "the AMQP connection is still open 10 s after `close connection`")
    expect(client.closed_by and client.closed_by[0] == 320,
           f"want connection.close 320 CONNECTION_FORCED, got closed_by={client.closed_by} error={client.error}")

    def gone():
        rows = listing("connections")
        expect(not [c for c in rows if c.get("name") == cname], f"{cname!r} still listed")
        qs = listing("queues", vhost=AMQP_VHOST)
        expect(not [q for q in qs if q.get("name") == AMQP_Q], f"exclusive queue {AMQP_Q} still listed")
    eventually(gone)
    r = admin("close", "connection", "--name", cname, ok=False)
    expect(r.rc != 0, "closing a connection that no longer exists succeeded")
    admin("close", "connection", "--name", cname, "--idempotently")


def health_ok(*args):
    r = admin("health_check", *args)
    expect("health check passed" in r.out, f"`{r.args}` printed {r.out!r}")


def health_failed(*args, reason):
    r = admin("health_check", *args, ok=False)
    expect(r.rc != 0, f"`{r.args}` passed: {r.out!r}")
    info = kv(r)
    expect(info.get("result") == "health check failed", f"`{r.args}`: {explain(r)}")
    expect("503" in info.get("status_code", ""), f"`{r.args}` status {info.get('status_code')!r}, want 503")
    expect(reason in info.get("reason", ""), f"`{r.args}` reason {info.get('reason')!r}")
    return info


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def c_health_alarms():
    health_ok("local_alarms")
    health_ok("cluster_wide_alarms")


def c_health_port_listener():
    health_ok("port_listener", "--port", str(AMQP_PORT))
    port = free_port()
    info = health_failed("port_listener", "--port", str(port), reason="No active listener")
    expect(info.get("inactive port") == str(port), f"inactive port {info.get('inactive port')!r}, want {port}")


def c_health_protocol_listener():
    health_ok("protocol_listener", "--protocol", "amqp")
    # Neither the reference broker nor Hare serves STOMP.
    info = health_failed("protocol_listener", "--protocol", "stomp", reason="No active listener")
    # "missing": "stomp" (before RabbitMQ 4.1) or ["stomp"] (4.1+): rabbitmqadmin prints
    # "inactive protocol" or "inactive protocols".
    missing = info.get("inactive protocol", info.get("inactive protocols", ""))
    expect("stomp" in missing, f"inactive protocol(s) {missing!r}, want stomp: {info}")


def c_health_quorum_critical():
    health_ok("node_is_quorum_critical")


# ---------------------------------------------------------------------------- checks: writes

BINDINGS = [  # (source, destination_type, destination, routing_key)
    (X, "queue", Q1, "rmqadmin.*"),
    (X, "exchange", X2, "e2e.rmqadmin"),
    (X2, "queue", Q2, ""),
]


def declare_vhost():
    admin("declare", "vhost", "--name", VH, "--description", DESCR)


def declare_user():
    admin("declare", "user", "--name", USER, "--password", USER_PASS, "--tags", "monitoring,management")


def declare_permissions():
    admin("declare", "permissions", "--username", AMQP_USER, "--configure", ".*",
          "--write", ".*", "--read", ".*", vhost=VH)
    if M_USER != AMQP_USER:
        admin("declare", "permissions", "--username", M_USER, "--configure", ".*",
              "--write", ".*", "--read", ".*", vhost=VH)
    admin("declare", "permissions", "--username", USER, "--configure", "^rmqadmin-suite-.*",
          "--write", "^rmqadmin-suite-x$", "--read", ".*", vhost=VH)


def declare_queues():
    admin("declare", "queue", "--name", Q1, "--durable", "true", vhost=VH)
    admin("declare", "queue", "--name", Q2, "--durable", "false", "--auto-delete", "false",
          "--arguments", '{"x-max-length": 100, "x-message-ttl": 600000}', vhost=VH)


def declare_exchanges():
    admin("declare", "exchange", "--name", X, "--type", "topic", "--durable", "true", vhost=VH)
    admin("declare", "exchange", "--name", X2, "--type", "fanout", "--durable", "false", vhost=VH)


def declare_bindings():
    for src, dt, dst, key in BINDINGS:
        admin("declare", "binding", "--source", src, "--destination-type", dt,
              "--destination", dst, "--routing-key", key, vhost=VH)


def declare_policies():
    admin("declare", "policy", "--name", POL, "--pattern", f"^{Q2}$", "--apply-to", "queues",
          "--priority", "7", "--definition", '{"max-length": 50}', vhost=VH)


def declare_operator_policies():
    admin("declare", "operator_policy", "--name", OPOL, "--pattern", f"^{Q1}$", "--apply-to", "queues",
          "--priority", "3", "--definition", '{"max-length": 1000}', vhost=VH)


def declare_vhost_limit():
    admin("declare", "vhost_limit", "--name", "max-queues", "--value", "50", vhost=VH)


def declare_user_limit():
    admin("declare", "user_limit", "--username", USER, "--name", "max-connections", "--value", "10")
    admin("declare", "user_limit", "--username", USER, "--name", "max-channels", "--value", "20")


def vh_bindings():
    return [b for b in listing("bindings") if b.get("vhost") == VH]


def c_declare_vhost():
    declare_vhost()
    v = row(listing("vhosts"), "vhost", name=VH)
    expect(v.get("description") == DESCR, f"description {v.get('description')!r}, want {DESCR!r}")


def c_declare_user():
    declare_user()
    u = row(listing("users"), "user", name=USER)
    tags = {t.strip() for t in u.get("tags", "").replace("\n", ",").split(",") if t.strip()}
    expect(tags == {"monitoring", "management"}, f"tags {u.get('tags')!r}")
    expect(u.get("password_hash"), f"no password_hash: {u}")


def c_declare_permissions():
    declare_permissions()
    rows = listing("permissions")
    p = row(rows, "permission", user=USER, vhost=VH)
    want = {"configure": "^rmqadmin-suite-.*", "write": "^rmqadmin-suite-x$", "read": ".*"}
    got = {k: p.get(k) for k in want}
    expect(got == want, f"permissions of {USER}: {got}, want {want}")
    row(rows, "permission", user=AMQP_USER, vhost=VH, configure=".*", write=".*", read=".*")


def c_declare_queue():
    declare_queues()
    rows = listing("queues", vhost=VH)
    q1 = row(rows, "queue", name=Q1, vhost=VH)
    q2 = row(rows, "queue", name=Q2, vhost=VH)
    expect(q1.get("durable") == "true" and q2.get("durable") == "false",
           f"durable {q1.get('durable')!r}/{q2.get('durable')!r}")
    expect(q2.get("auto_delete") == "false" and q2.get("exclusive") == "false", f"q2 {q2}")
    a = args_of(q2.get("arguments"))
    expect(a.get("x-max-length") == "100" and a.get("x-message-ttl") == "600000", f"q2 arguments {a}")
    expect(q1.get("queue_type") == "classic", f"queue_type {q1.get('queue_type')!r}")
    # Redeclaring with a different durability is refused (400, inequivalent arg).
    r = admin("declare", "queue", "--name", Q1, "--durable", "false", vhost=VH, ok=False)
    expect(r.rc != 0 and "durable" in (r.out + r.err), f"inequivalent redeclare of {Q1}: rc {r.rc}, {explain(r)}")


def c_declare_exchange():
    declare_exchanges()
    rows = listing("exchanges", vhost=VH)
    x = row(rows, "exchange", name=X, vhost=VH)
    x2 = row(rows, "exchange", name=X2, vhost=VH)
    expect(x.get("exchange_type") == "topic" and x.get("durable") == "true", f"{X}: {x}")
    expect(x2.get("exchange_type") == "fanout" and x2.get("durable") == "false", f"{X2}: {x2}")
    row(rows, "exchange", name="amq.topic", vhost=VH)  # a new vhost has the standard exchanges


def c_declare_binding():
    declare_bindings()
    rows = vh_bindings()
    for src, dt, dst, key in BINDINGS:
        row(rows, "binding", source=src, destination_type=dt, destination=dst, routing_key=key)
    row(rows, "default-exchange binding", source="", destination=Q1, routing_key=Q1)


def c_declare_policy():
    declare_policies()
    p = row(listing("policies", vhost=VH), "policy", name=POL)
    expect(p.get("vhost") == VH and p.get("pattern") == f"^{Q2}$" and p.get("apply_to") == "queues"
           and p.get("priority") == "7", f"policy {p}")
    expect(args_of(p.get("definition")) == {"max-length": "50"}, f"definition {p.get('definition')!r}")
    eventually(lambda: row(listing("queues", vhost=VH), "queue", name=Q2, policy=POL))


def c_declare_operator_policy():
    declare_operator_policies()
    p = row(listing("operator_policies", vhost=VH), "operator policy", name=OPOL)
    expect(p.get("vhost") == VH and p.get("pattern") == f"^{Q1}$" and p.get("apply_to") == "queues"
           and p.get("priority") == "3", f"operator policy {p}")
    expect(args_of(p.get("definition")) == {"max-length": "1000"}, f"definition {p.get('definition')!r}")
    eventually(lambda: row(listing("queues", vhost=VH), "queue", name=Q1, operator_policy=OPOL))


def c_declare_vhost_limit():
    declare_vhost_limit()
    lim = row(listing("vhost_limits", vhost=VH), "vhost limit", vhost=VH)
    expect(args_of(lim.get("limits")) == {"max-queues": "50"}, f"limits {lim.get('limits')!r}")


def c_declare_user_limit():
    declare_user_limit()
    lim = row(listing("user_limits"), "user limit", username=USER)
    expect(args_of(lim.get("limits")) == {"max-connections": "10", "max-channels": "20"},
           f"limits {lim.get('limits')!r}")


def queue_counts(expected):
    """Polls `list queues` until every queue has the expected message_count."""
    def check():
        rows = listing("queues", vhost=VH)
        got = {n: row(rows, "queue", name=n).get("message_count") for n in expected}
        expect(got == {n: str(c) for n, c in expected.items()}, f"message_count {got}, want {expected}")
    eventually(check)


def c_publish_message():
    props = '{"content_type": "text/plain", "delivery_mode": 2, "headers": {"rmqadmin-h": "v1"}}'
    for i in (1, 2, 3):
        r = admin("publish", "message", "--exchange", X, "--routing-key", "rmqadmin.a",
                  "--payload", f"rmqadmin-suite-body-{i}", "--properties", props, vhost=VH)
        expect("routed successfully" in r.out, f"publish {i}: {r.out!r}")
    r = admin("publish", "message", "--exchange", X, "--routing-key", "e2e.rmqadmin",
              "--payload", "rmqadmin-suite-e2e", vhost=VH)
    expect("routed successfully" in r.out, f"publish via {X2}: {r.out!r}")
    r = admin("publish", "message", "--exchange", X, "--routing-key", "nomatch",
              "--payload", "rmqadmin-suite-lost", vhost=VH)
    expect("NOT routed" in r.out, f"unroutable publish printed {r.out!r}")
    r = admin("publish", "message", "--routing-key", Q2, "--payload", "rmqadmin-suite-default", vhost=VH)
    expect("routed successfully" in r.out, f"publish to the default exchange: {r.out!r}")
    queue_counts({Q1: 3, Q2: 2})


def get(queue, count, mode):
    return table(admin("get", "messages", "--queue", queue, "--count", str(count), "--ack-mode", mode, vhost=VH))


def c_get_messages():
    msgs = get(Q1, 5, "ack_requeue_true")
    expect([m.get("payload") for m in msgs] == [f"rmqadmin-suite-body-{i}" for i in (1, 2, 3)],
           f"payloads {[m.get('payload') for m in msgs]}")
    m = msgs[0]
    expect(m.get("exchange") == X and m.get("routing_key") == "rmqadmin.a", f"exchange/routing key: {m}")
    expect(m.get("redelivered") == "false" and m.get("payload_encoding") == "string", f"first get: {m}")
    expect(m.get("payload_bytes") == str(len("rmqadmin-suite-body-1")), f"payload_bytes {m.get('payload_bytes')!r}")
    expect([x.get("message_count") for x in msgs] == ["2", "1", "0"], f"message_count {[x.get('message_count') for x in msgs]}")
    p = args_of(m.get("properties"))
    expect(p.get("content_type") == '"text/plain"', f"properties {m.get('properties')!r}")
    expect("rmqadmin-h" in (m.get("properties") or ""), f"headers missing: {m.get('properties')!r}")
    again = get(Q1, 1, "ack_requeue_true")
    expect(len(again) == 1 and again[0].get("payload") == "rmqadmin-suite-body-1"
           and again[0].get("redelivered") == "true", f"requeued message: {again}")
    taken = get(Q1, 1, "ack_requeue_false")
    expect(len(taken) == 1 and taken[0].get("payload") == "rmqadmin-suite-body-1"
           and taken[0].get("message_count") == "2", f"ack_requeue_false: {taken}")
    e2e = get(Q2, 5, "ack_requeue_true")
    expect(sorted(m.get("payload") for m in e2e) == ["rmqadmin-suite-default", "rmqadmin-suite-e2e"],
           f"{Q2} payloads {[m.get('payload') for m in e2e]}")
    queue_counts({Q1: 2, Q2: 2})


def c_purge_queue():
    admin("purge", "queue", "--name", Q1, vhost=VH)
    expect(get(Q1, 5, "ack_requeue_true") == [], f"{Q1} not empty after purge")
    queue_counts({Q1: 0, Q2: 2})


def load_json(path):
    with open(path) as f:
        return json.load(f)


def c_definitions_export():
    admin("definitions", "export", "--file", S.export_file)
    d = load_json(S.export_file)
    for k in REQUIRED["definitions"]:
        expect(isinstance(d.get(k), list), f"export has no {k!r} array")
    expect([v for v in d["vhosts"] if v.get("name") == VH], f"{VH} not in vhosts")
    u = [u for u in d["users"] if u.get("name") == USER]
    expect(u and u[0].get("password_hash"), f"{USER} (with password_hash) not in users")
    expect(u[0].get("limits") == {"max-connections": 10, "max-channels": 20},
           f"{USER}'s limits in the export: {u[0].get('limits')!r}")
    perms = {(p["user"], p["configure"], p["write"], p["read"]) for p in d["permissions"] if p.get("vhost") == VH}
    expect((USER, "^rmqadmin-suite-.*", "^rmqadmin-suite-x$", ".*") in perms, f"permissions in {VH}: {perms}")
    qs = {q["name"]: q for q in d["queues"] if q.get("vhost") == VH}
    expect(set(qs) == {Q1, Q2}, f"queues in {VH}: {sorted(qs)}")
    expect(qs[Q2]["arguments"].get("x-max-length") == 100, f"{Q2} arguments {qs[Q2]['arguments']}")
    xs = {x["name"]: x["type"] for x in d["exchanges"] if x.get("vhost") == VH}
    expect(xs == {X: "topic", X2: "fanout"}, f"exchanges in {VH}: {xs}")
    bs = {(b["source"], b["destination_type"], b["destination"], b["routing_key"])
          for b in d["bindings"] if b.get("vhost") == VH}
    expect(bs == set(BINDINGS), f"bindings in {VH}: {bs}")
    ps = [p for p in d["policies"] if p.get("vhost") == VH]
    expect([p["name"] for p in ps] == [POL] and ps[0]["definition"] == {"max-length": 50}, f"policies {ps}")
    # Operator policies and vhost limits: runtime parameters (3.x) or their own keys.
    blob = json.dumps({k: v for k, v in d.items() if k not in ("queues", "exchanges", "bindings", "policies")})
    expect(OPOL in blob, f"operator policy {OPOL} not exported")
    expect("max-queues" in blob, "vhost limit max-queues not exported")


def c_definitions_export_vhost():
    admin("definitions", "export_from_vhost", "--file", S.vhost_export_file, vhost=VH)
    d = load_json(S.vhost_export_file)
    expect({q["name"] for q in d.get("queues", [])} == {Q1, Q2}, f"queues {d.get('queues')}")
    expect({x["name"] for x in d.get("exchanges", [])} == {X, X2}, f"exchanges {d.get('exchanges')}")
    expect(len(d.get("bindings", [])) == 3, f"bindings {d.get('bindings')}")
    expect([p["name"] for p in d.get("policies", [])] == [POL], f"policies {d.get('policies')}")
    expect(not d.get("users") and not d.get("vhosts"), "a vhost export carries users or vhosts")


def snapshot():
    """What the round trip must restore, from rabbitmqadmin's listings."""
    def keep(rows, cols):
        return sorted(json.dumps({c: r.get(c) for c in cols}, sort_keys=True) for r in rows)
    vh = [v for v in listing("vhosts") if v.get("name") == VH]
    return {
        "vhosts": keep(vh, ["name", "description", "default_queue_type", "tags"]),
        "users": keep(listing("users", name=USER), ["name", "tags", "password_hash"]),
        "permissions": keep([p for p in listing("permissions") if p.get("vhost") == VH],
                            ["user", "vhost", "configure", "write", "read"]),
        "queues": keep(listing("queues", vhost=VH),
                       ["name", "vhost", "queue_type", "durable", "auto_delete", "exclusive", "arguments"]),
        "exchanges": keep(listing("exchanges", vhost=VH),
                          ["name", "vhost", "exchange_type", "durable", "auto_delete", "arguments"]),
        "bindings": keep(vh_bindings(), ["vhost", "source", "destination", "destination_type",
                                         "routing_key", "arguments", "properties_key"]),
        "policies": keep(listing("policies", vhost=VH), ["name", "vhost", "pattern", "apply_to", "priority", "definition"]),
        "operator_policies": keep(listing("operator_policies", vhost=VH),
                                  ["name", "vhost", "pattern", "apply_to", "priority", "definition"]),
        "vhost_limits": keep(listing("vhost_limits", vhost=VH), ["vhost", "limits"]),
        "user_limits": keep(listing("user_limits", username=USER), ["username", "limits"]),
    }


def only_suite_objects(d):
    """The export restricted to this suite's vhost and user: importing the whole file
    would re-create objects other users of a shared broker deleted in the meantime."""
    def in_vh(items):
        return [i for i in items if i.get("vhost") == VH]
    out = {k: v for k, v in d.items() if not isinstance(v, list)}
    out.update({
        "users": [u for u in d["users"] if u.get("name") == USER],
        "vhosts": [v for v in d["vhosts"] if v.get("name") == VH],
        "permissions": in_vh(d["permissions"]),
        "topic_permissions": in_vh(d.get("topic_permissions", [])),
        "parameters": in_vh(d["parameters"]),
        "global_parameters": [],
        "policies": in_vh(d["policies"]),
        "queues": in_vh(d["queues"]),
        "exchanges": in_vh(d["exchanges"]),
        "bindings": in_vh(d["bindings"]),
    })
    for k in ("operator_policies", "vhost_limits"):  # in case a broker exports them apart
        if isinstance(d.get(k), list):
            out[k] = in_vh(d[k])
    return out


def c_definitions_import():
    d = load_json(S.export_file)
    mine = only_suite_objects(d)
    path = os.path.join(S.tmp, "definitions-suite.json")
    with open(path, "w") as f:
        json.dump(mine, f)
    before = eventually(snapshot_complete)
    exported_vh = mine["vhosts"][0]
    compare_description = bool(exported_vh.get("description")
                               or (exported_vh.get("metadata") or {}).get("description"))
    if not compare_description:
        # RabbitMQ 3.10 exports vhosts as {"name": ...} only (3.13 adds metadata).
        note(f"the export has no description for {VH} ({exported_vh}); not compared after the import")
        before["vhosts"] = [strip_description(v) for v in before["vhosts"]]
    admin("delete", "vhost", "--name", VH)
    admin("delete", "user", "--name", USER)
    expect(not listing("vhosts", name=VH), f"{VH} still listed after delete vhost")
    expect(not listing("users", name=USER), f"{USER} still listed after delete user")
    admin("definitions", "import", "--file", path)

    def restored():
        after = snapshot()
        if not compare_description:
            after["vhosts"] = [strip_description(v) for v in after["vhosts"]]
        diff = {k: {"before": before[k], "after": after[k]} for k in before if before[k] != after[k]}
        expect(not diff, f"listings differ after the import: {json.dumps(diff)[:1500]}")
    eventually(restored)


def snapshot_complete():
    s = snapshot()
    expect(len(s["queues"]) == 2 and len(s["users"]) == 1 and len(s["vhosts"]) == 1,
           f"fixtures incomplete before the round trip: {s}")
    return s


def strip_description(v):
    d = json.loads(v)
    d.pop("description", None)
    return json.dumps(d, sort_keys=True)


def c_definitions_import_vhost():
    admin("delete", "exchange", "--name", X2, vhost=VH)
    admin("delete", "queue", "--name", Q2, vhost=VH)
    rows = listing("queues", vhost=VH)
    expect(not [q for q in rows if q.get("name") == Q2], f"{Q2} still listed after delete")
    admin("definitions", "import_into_vhost", "--file", S.vhost_export_file, vhost=VH)

    def restored():
        q = row(listing("queues", vhost=VH), "queue", name=Q2)
        expect(args_of(q.get("arguments")).get("x-max-length") == "100", f"{Q2} arguments {q.get('arguments')!r}")
        row(listing("exchanges", vhost=VH), "exchange", name=X2, exchange_type="fanout")
        rows = vh_bindings()
        for src, dt, dst, key in BINDINGS:
            row(rows, "binding", source=src, destination_type=dt, destination=dst, routing_key=key)
    eventually(restored)


def ensure_fixtures():
    """Re-creates (idempotently) everything the delete checks remove, so each of them
    works on its own even when an earlier check failed halfway. Errors are only logged."""
    for fn in (declare_vhost, declare_user, declare_permissions, declare_queues, declare_exchanges,
               declare_bindings, declare_policies, declare_operator_policies, declare_vhost_limit,
               declare_user_limit):
        try:
            fn()
        except CheckFailed as e:
            log(f"ensure_fixtures: {fn.__name__}: {e}")


def c_delete_binding():
    ensure_fixtures()
    admin("delete", "binding", "--source", X, "--destination-type", "queue", "--destination", Q1,
          "--routing-key", "rmqadmin.*", vhost=VH)
    rows = vh_bindings()
    expect(not [b for b in rows if b.get("source") == X and b.get("destination") == Q1],
           f"binding {X} -> {Q1} still listed")
    row(rows, "binding", source=X, destination=X2, destination_type="exchange")


def c_delete_exchange():
    ensure_fixtures()
    admin("delete", "exchange", "--name", X2, vhost=VH)
    expect(not [x for x in listing("exchanges", vhost=VH) if x.get("name") == X2], f"{X2} still listed")
    expect(not [b for b in vh_bindings() if X2 in (b.get("source"), b.get("destination"))],
           f"bindings of {X2} still listed")
    r = admin("delete", "exchange", "--name", X2, vhost=VH, ok=False)
    expect(r.rc != 0, f"deleting the missing exchange {X2} succeeded")
    admin("delete", "exchange", "--name", X2, "--idempotently", vhost=VH)


def c_delete_queue():
    ensure_fixtures()
    admin("delete", "queue", "--name", Q2, vhost=VH)
    rows = listing("queues", vhost=VH)
    expect(not [q for q in rows if q.get("name") == Q2], f"{Q2} still listed")
    row(rows, "queue", name=Q1)
    r = admin("delete", "queue", "--name", Q2, vhost=VH, ok=False)
    expect(r.rc != 0 and "404" in (r.out + r.err), f"deleting the missing queue {Q2}: rc {r.rc}")
    admin("delete", "queue", "--name", Q2, "--idempotently", vhost=VH)


def c_delete_policy():
    ensure_fixtures()
    admin("delete", "policy", "--name", POL, vhost=VH)
    expect(not listing("policies", vhost=VH, name=POL), f"{POL} still listed")


def c_delete_operator_policy():
    ensure_fixtures()
    admin("delete", "operator_policy", "--name", OPOL, vhost=VH)
    expect(not listing("operator_policies", vhost=VH, name=OPOL), f"{OPOL} still listed")


def c_delete_vhost_limit():
    ensure_fixtures()
    admin("delete", "vhost_limit", "--name", "max-queues", vhost=VH)
    rows = listing("vhost_limits", vhost=VH)
    expect(not [r for r in rows if "max-queues" in (r.get("limits") or "")], f"limit still listed: {brief(rows)}")


def c_delete_user_limit():
    ensure_fixtures()
    admin("delete", "user_limit", "--username", USER, "--name", "max-channels")
    lim = row(listing("user_limits"), "user limit", username=USER)
    expect(args_of(lim.get("limits")) == {"max-connections": "10"}, f"limits {lim.get('limits')!r}")
    admin("delete", "user_limit", "--username", USER, "--name", "max-connections")
    rows = listing("user_limits", username=USER)
    expect(not rows, f"limits of {USER} still listed: {brief(rows)}")


def c_delete_permissions():
    ensure_fixtures()
    admin("delete", "permissions", "--username", USER, vhost=VH)
    rows = listing("permissions")
    expect(not [p for p in rows if p.get("user") == USER and p.get("vhost") == VH], f"permissions of {USER} still listed")


def c_delete_user():
    ensure_fixtures()
    admin("delete", "user", "--name", USER)
    expect(not listing("users", name=USER), f"{USER} still listed")
    r = admin("delete", "user", "--name", USER, ok=False)
    expect(r.rc != 0, f"deleting the missing user {USER} succeeded")
    admin("delete", "user", "--name", USER, "--idempotently")


def c_delete_vhost():
    ensure_fixtures()
    admin("delete", "vhost", "--name", VH)
    expect(not listing("vhosts", name=VH), f"{VH} still listed")
    r = admin("list", "queues", vhost=VH, ok=False)
    expect(r.rc != 0 or not table(r), f"queues still listed in the deleted vhost: {r.out[:300]}")
    r = admin("delete", "vhost", "--name", VH, ok=False)
    expect(r.rc != 0, f"deleting the missing vhost {VH} succeeded")
    admin("delete", "vhost", "--name", VH, "--idempotently")


DECLARES = ["declare-vhost", "declare-user", "declare-permissions", "declare-queue",
            "declare-exchange", "declare-binding", "declare-policy", "declare-operator-policy",
            "declare-vhost-limit", "declare-user-limit"]

# (name, function, prerequisite checks)
CHECKS = [
    ("show-overview", c_show_overview, []),
    ("list-nodes", c_list_nodes, []),
    ("list-vhosts", c_list_vhosts, []),
    ("list-users", c_list_users, []),
    ("list-permissions", c_list_permissions, []),
    ("list-exchanges", c_list_exchanges, []),
    ("list-policies", c_list_policies, []),
    ("list-queues", c_list_queues, []),
    ("list-bindings", c_list_bindings, []),
    ("list-connections", c_list_connections, []),
    ("list-channels", c_list_channels, []),
    ("list-consumers", c_list_consumers, []),
    ("definitions-export-readonly", c_definitions_export_readonly, []),
    ("close-connection", c_close_connection, []),
    ("health-check-alarms", c_health_alarms, []),
    ("health-check-port-listener", c_health_port_listener, []),
    ("health-check-protocol-listener", c_health_protocol_listener, []),
    ("health-check-quorum-critical", c_health_quorum_critical, []),
    ("declare-vhost", c_declare_vhost, []),
    ("declare-user", c_declare_user, []),
    ("declare-permissions", c_declare_permissions, ["declare-vhost", "declare-user"]),
    ("declare-queue", c_declare_queue, ["declare-vhost"]),
    ("declare-exchange", c_declare_exchange, ["declare-vhost"]),
    ("declare-binding", c_declare_binding, ["declare-queue", "declare-exchange"]),
    ("declare-policy", c_declare_policy, ["declare-queue"]),
    ("declare-operator-policy", c_declare_operator_policy, ["declare-queue"]),
    ("declare-vhost-limit", c_declare_vhost_limit, ["declare-vhost"]),
    ("declare-user-limit", c_declare_user_limit, ["declare-user"]),
    ("publish-message", c_publish_message, ["declare-binding", "declare-permissions"]),
    ("get-messages", c_get_messages, ["publish-message"]),
    ("purge-queue", c_purge_queue, ["get-messages"]),
    ("definitions-export", c_definitions_export, DECLARES),
    ("definitions-export-vhost", c_definitions_export_vhost, DECLARES),
    ("definitions-import", c_definitions_import, ["definitions-export"]),
    ("definitions-import-vhost", c_definitions_import_vhost, ["definitions-export-vhost"]),
    ("delete-binding", c_delete_binding, ["declare-binding"]),
    ("delete-exchange", c_delete_exchange, ["declare-exchange"]),
    ("delete-queue", c_delete_queue, ["declare-queue"]),
    ("delete-policy", c_delete_policy, ["declare-policy"]),
    ("delete-operator-policy", c_delete_operator_policy, ["declare-operator-policy"]),
    ("delete-vhost-limit", c_delete_vhost_limit, ["declare-vhost-limit"]),
    ("delete-user-limit", c_delete_user_limit, ["declare-user-limit"]),
    ("delete-permissions", c_delete_permissions, ["declare-permissions"]),
    ("delete-user", c_delete_user, ["declare-user"]),
    ("delete-vhost", c_delete_vhost, ["declare-vhost"]),
]


def cleanup():
    for args in (("delete", "vhost", "--name", VH, "--idempotently"),
                 ("delete", "user", "--name", USER, "--idempotently")):
        try:
            admin(*args, ok=False)
        except Exception as e:  # noqa: BLE001
            log(f"cleanup: {e}")


def load_known(path):
    known = {}
    if path and os.path.exists(path):
        for line in open(path):
            name, _, reason = line.partition("#")
            if name.strip():
                known[name.strip()] = reason.strip()
    return known


def main():
    global LOG
    ap = argparse.ArgumentParser()
    ap.add_argument("--known-failures")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--log")
    a = ap.parse_args()
    if a.list:
        print("\n".join(n for n, _, _ in CHECKS))
        return 0
    if a.log:
        os.makedirs(os.path.dirname(a.log) or ".", exist_ok=True)
        LOG = open(a.log, "w")
    if not os.access(ADMIN, os.X_OK):
        print(f"rabbitmqadmin: {ADMIN} not found; run install.sh")
        print("rabbitmqadmin: 0 passed, 1 failed, 0 skipped")
        return 1
    ver = subprocess.run([ADMIN, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"rabbitmqadmin: {ver} against {M_BASE} (AMQP {AMQP_HOST}:{AMQP_PORT}, vhost {AMQP_VHOST})", flush=True)
    known = load_known(a.known_failures)
    passed = failed = skipped = 0
    outcome = {}
    timed_out_in_a_row = 0
    cleanup()
    try:
        for name, fn, needs in CHECKS:
            if a.only and name not in a.only:
                continue
            if timed_out_in_a_row >= 2:
                outcome[name] = "fail"
                if name in known:
                    print(f"rabbitmqadmin: known failure {name}: not run  # {known[name]}", flush=True)
                else:
                    failed += 1
                    print(f"rabbitmqadmin: FAIL {name}: not run (two checks in a row timed out)", flush=True)
                continue
            blocked = [n for n in needs if outcome.get(n, "pass") != "pass"]
            if blocked:
                outcome[name] = "skip"
                skipped += 1
                print(f"rabbitmqadmin: SKIP {name} (needs {', '.join(blocked)})", flush=True)
                continue
            NOTES.clear()
            log(f"\n===== {name}")
            t0 = time.monotonic()
            err = None
            TIMEOUTS["in_check"] = False
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - one check must not stop the others
                err = e
                log(traceback.format_exc())
            dt = time.monotonic() - t0
            timed_out_in_a_row = timed_out_in_a_row + 1 if TIMEOUTS["in_check"] else 0
            notes = "".join(f"\n    note: {n}" for n in NOTES)
            if err is None:
                outcome[name] = "pass"
                passed += 1
                fixed = "  (NOTE: listed as known failure, now passes)" if name in known else ""
                print(f"rabbitmqadmin: PASS {name} ({dt:.1f}s){fixed}{notes}", flush=True)
                continue
            outcome[name] = "fail"
            if not isinstance(err, CheckFailed):
                err = f"{type(err).__name__}: {err}"
            if name in known:
                print(f"rabbitmqadmin: known failure {name}: {err}  # {known[name]}", flush=True)
            else:
                failed += 1
                print(f"rabbitmqadmin: FAIL {name} ({dt:.1f}s): {err}{notes}", flush=True)
    finally:
        if S.amqp_client:
            S.amqp_client.close()
        if timed_out_in_a_row < 2:
            cleanup()
        shutil.rmtree(S.tmp, ignore_errors=True)
    print(f"rabbitmqadmin: {passed} passed, {failed} failed, {skipped} skipped", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
