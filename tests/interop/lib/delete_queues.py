"""Delete the given queues on AMQP_URL (AMQP_HOST/PORT/USER/PASS/VHOST from common.sh).

Some upstream tests use fixed queue names and leave unacked messages behind, so a
second run against the same broker would see the first run's leftovers. Missing
queues are fine. Never fails the suite: problems are printed and ignored.
"""
import os
import sys

import amqp

try:
    conn = amqp.Connection(
        host=f"{os.environ['AMQP_HOST']}:{os.environ['AMQP_PORT']}",
        userid=os.environ["AMQP_USER"], password=os.environ["AMQP_PASS"],
        virtual_host=os.environ["AMQP_VHOST"], connect_timeout=5,
        read_timeout=5, write_timeout=5)
    conn.connect()
    for name in sys.argv[1:]:
        ch = conn.channel()
        try:
            ch.queue_delete(name)
            ch.close()
        except amqp.exceptions.NotFound:
            pass
    conn.close()
except Exception as e:  # noqa: BLE001
    print(f"pre-clean: could not delete queues: {e!r}", file=sys.stderr)
