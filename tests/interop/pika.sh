#!/usr/bin/env bash
# RabbitMQ tutorials 1-6 + publisher confirms with pika BlockingConnection (pika_tutorials.py)
# against AMQP_URL (pika.URLParameters: host, port, credentials and vhost all from the URL).
set -uo pipefail
. "$(dirname "$0")/lib/common.sh"
need_venv || { echo "pika: 0 passed, 1 failed"; exit 1; }
rc=0
timeout -k 10 "${SUITE_TIMEOUT:-280}" "$PY" "$INTEROP_DIR/pika_tutorials.py" \
  --known-failures "$INTEROP_DIR/pika-known-failures.txt" "$@" || rc=$?
if [ "$rc" -gt 1 ]; then
  echo "pika: runner exited with status $rc$([ "$rc" = 124 ] && echo ' (timeout)')"
  echo "pika: 0 passed, 1 failed"
fi
exit $rc
