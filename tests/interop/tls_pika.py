#!/usr/bin/env python3
"""pika over TLS against the broker's AMQPS listener (HARE_AMQPS_URL) with the certificates
tls-certs.sh wrote (HARE_TLS_DIR): a round trip with PLAIN, EXTERNAL with a client certificate,
refusals (unknown common name, no certificate, a server certificate from an untrusted CA), a
plaintext client on the TLS port, TLS 1.2 and TLS 1.3 each.

Writes one "pass|fail<TAB>name" line per test to --results and the reason of each failure
to stdout.
"""
import argparse
import os
import ssl
import sys
import time
import traceback
import uuid
from urllib.parse import urlsplit

import pika
import pika.credentials
import pika.exceptions

CERTS = os.environ["HARE_TLS_DIR"]
URL = urlsplit(os.environ["HARE_AMQPS_URL"])
HOST, PORT = URL.hostname, URL.port


def cert(name):
    return os.path.join(CERTS, name)


def context(ca="ca.pem", client=None, version=None):
    ctx = ssl.create_default_context(cafile=cert(ca))
    if client:
        ctx.load_cert_chain(cert(f"{client}.pem"), cert(f"{client}.key"))
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def params(ctx=None, credentials=None):
    return pika.ConnectionParameters(
        host="localhost",
        port=PORT,
        credentials=credentials or pika.PlainCredentials("guest", "guest"),
        ssl_options=pika.SSLOptions(ctx, "localhost") if ctx else None,
        connection_attempts=1,
        socket_timeout=5,
        blocked_connection_timeout=5,
    )


def round_trip(connection):
    channel = connection.channel()
    queue = f"tls-{uuid.uuid4()}"
    channel.queue_declare(queue, auto_delete=True)
    body = os.urandom(40_000)  # several TLS records
    channel.basic_publish("", queue, body)
    deadline = time.monotonic() + 5
    while True:
        method, _, got = channel.basic_get(queue, auto_ack=True)
        if method:
            assert got == body, "the body changed on the way"
            break
        assert time.monotonic() < deadline, "the message did not arrive"
        time.sleep(0.02)
    connection.close()


def refused(parameters, expect):
    """Connecting must fail with an error whose repr contains one of `expect`."""
    try:
        connection = pika.BlockingConnection(parameters)
    except (pika.exceptions.AMQPError, ssl.SSLError, OSError) as error:
        text = repr(error)
        if os.environ.get("INTEROP_VERBOSE") == "1":
            print(f"tls: refused as expected: {text}")
        assert any(word in text for word in expect), f"unexpected error {text}"
        return
    connection.close()
    raise AssertionError("the connection was accepted")


def test_plain_login_round_trip():
    round_trip(pika.BlockingConnection(params(context())))


def test_tls12_round_trip():
    round_trip(pika.BlockingConnection(params(context(version=ssl.TLSVersion.TLSv1_2))))


def test_tls13_round_trip():
    round_trip(pika.BlockingConnection(params(context(version=ssl.TLSVersion.TLSv1_3))))


def test_external_login_with_client_certificate():
    ctx = context(client="client-guest")
    credentials = pika.credentials.ExternalCredentials()
    round_trip(pika.BlockingConnection(params(ctx, credentials)))


def test_external_unknown_common_name_refused():
    ctx = context(client="client-mallory")
    credentials = pika.credentials.ExternalCredentials()
    refused(params(ctx, credentials), ["ACCESS_REFUSED", "403", "Authentication"])


def test_external_without_certificate_refused():
    credentials = pika.credentials.ExternalCredentials()
    refused(params(context(), credentials), ["SASL", "Authentication", "ACCESS_REFUSED"])


def test_untrusted_server_certificate_refused():
    refused(params(context(ca="other-ca.pem")), ["CERTIFICATE_VERIFY_FAILED"])


def test_plaintext_client_on_tls_port_closed_promptly():
    started = time.monotonic()
    refused(params(None), ["Incompatible", "StreamLost", "ConnectionClosed", "EOF", "reset", "AMQPConnection"])
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"took {elapsed:.1f} s"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", required=True)
    args = parser.parse_args()
    tests = [(name, fn) for name, fn in sorted(globals().items()) if name.startswith("test_")]
    with open(args.results, "a") as results:
        for name, fn in tests:
            try:
                fn()
                outcome = "pass"
            except Exception:  # noqa: BLE001 - every failure is reported, then the next test runs
                outcome = "fail"
                print(f"tls: pika {name} failed:\n{traceback.format_exc()}")
            results.write(f"{outcome}\tpika.{name}\n")
            results.flush()


if __name__ == "__main__":
    sys.exit(main())
