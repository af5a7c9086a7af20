"""Celery app of the celery interop suite (celery_e2e.py), shared by the worker
(`celery -A celery_interop_app worker`) and the client.

Broker: AMQP_URL on the py-amqp transport (pyamqp://, host/port/credentials/vhost
taken from the URL), results over the rpc backend (rpc://). Per run, from the
environment that celery_e2e.py sets for both sides:
  CELERY_INTEROP_QUEUE  default queue (and exchange/routing key), unique per run
  CELERY_INTEROP_STATE  directory where `flaky` records each execution
"""
import os
import time
from urllib.parse import quote, unquote, urlsplit

from celery import Celery


def broker_url(amqp_url):
    """amqp://user:pass@host:port/vhost -> pyamqp://... (RabbitMQ URI rules: an empty
    path or "/" is vhost "/"; the vhost is sent percent-encoded, so "/" is "%2F")."""
    u = urlsplit(amqp_url)
    path = u.path[1:] if u.path.startswith("/") else u.path
    vhost = unquote(path) if path else "/"
    host = u.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    port = u.port or (5671 if u.scheme == "amqps" else 5672)
    user = quote(unquote(u.username or "guest"), safe="")
    password = quote(unquote(u.password or "guest"), safe="")
    return f"pyamqp://{user}:{password}@{host}:{port}/{quote(vhost, safe='')}"


QUEUE = os.environ.get("CELERY_INTEROP_QUEUE", "interop.celery")
STATE = os.environ.get("CELERY_INTEROP_STATE", "")

app = Celery("celery_interop_app")
app.conf.update(
    broker_url=broker_url(os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")),
    result_backend="rpc://",
    task_default_queue=QUEUE,
    # A broker that does not answer must fail the suite quickly, not be retried for minutes.
    broker_connection_timeout=5,
    broker_connection_retry_on_startup=False,
    broker_connection_max_retries=3,
    broker_pool_limit=4,
    worker_prefetch_multiplier=4,
    accept_content=["json"],
    task_serializer="json",
    result_serializer="json",
)


@app.task
def add(x, y):
    return x + y


@app.task
def now():
    """Wall-clock time at which the worker ran the task."""
    return time.time()


@app.task(bind=True, max_retries=5)
def flaky(self, key, succeed_on=3):
    """Fails (retry after 1 s) until its `succeed_on`-th execution; records each one."""
    attempt = self.request.retries + 1
    if STATE:
        with open(os.path.join(STATE, f"flaky-{key}"), "a") as f:
            f.write(f"{attempt} {time.time():.3f}\n")
    if attempt < succeed_on:
        raise self.retry(countdown=1)
    return attempt
