#!/usr/bin/env bash
# Celery end to end (celery_e2e.py): a real `celery worker` (solo pool) on the py-amqp
# transport with the rpc result backend, against AMQP_URL (host, port, credentials and
# vhost all from the URL). Cases: round trip, chain, group of 100, retry, countdown,
# `celery inspect ping` and app.control.inspect().ping().
set -uo pipefail
. "$(dirname "$0")/lib/common.sh"
need_venv || { echo "celery: 0 passed, 1 failed, 0 skipped"; exit 1; }
export PYTHONDONTWRITEBYTECODE=1
rc=0
timeout -k 10 "${SUITE_TIMEOUT:-280}" "$PY" "$INTEROP_DIR/celery_e2e.py" \
  --known-failures "$INTEROP_DIR/celery-known-failures.txt" \
  --log "$CACHE_DIR/logs/celery.log" "$@" || rc=$?
if [ "$rc" -gt 1 ]; then
  echo "celery: runner exited with status $rc$([ "$rc" = 124 ] && echo ' (timeout)')"
  echo "celery: 0 passed, 1 failed, 0 skipped"
fi
exit $rc
