#!/usr/bin/env bash
# The official rabbitmqadmin v2 CLI (rabbitmqadmin_suite.py) against the management HTTP
# API at HARE_MANAGEMENT_URL (the base without /api, e.g. http://127.0.0.1:15672), with
# AMQP fixtures from AMQP_URL. Host, port and credentials go to rabbitmqadmin as flags
# (credentials: HARE_MANAGEMENT_URL's userinfo, else HARE_MANAGEMENT_USER/_PASSWORD, else
# AMQP_URL's). RABBITMQADMIN overrides the binary (default ~/.cargo/bin/rabbitmqadmin,
# must be 2.35.0; /usr/bin/rabbitmqadmin is Debian's unrelated v1).
set -uo pipefail
. "$(dirname "$0")/lib/common.sh"
need_venv || { echo "rabbitmqadmin: 0 passed, 1 failed, 0 skipped"; exit 1; }
export HARE_MANAGEMENT_URL=${HARE_MANAGEMENT_URL:-http://127.0.0.1:15672}
export RABBITMQADMIN=${RABBITMQADMIN:-$RABBITMQADMIN_BIN}
if ! "$RABBITMQADMIN" --version 2>/dev/null | grep -qx "rabbitmqadmin $RABBITMQADMIN_VERSION"; then
  echo "rabbitmqadmin: $RABBITMQADMIN is not rabbitmqadmin $RABBITMQADMIN_VERSION; run install.sh" >&2
  echo "rabbitmqadmin: 0 passed, 1 failed, 0 skipped"; exit 1
fi
export PYTHONDONTWRITEBYTECODE=1
mkdir -p "$CACHE_DIR/logs"
rc=0
timeout -k 10 "${SUITE_TIMEOUT:-280}" "$PY" "$INTEROP_DIR/rabbitmqadmin_suite.py" \
  --known-failures "$INTEROP_DIR/rabbitmqadmin-known-failures.txt" \
  --log "$CACHE_DIR/logs/rabbitmqadmin.log" "$@" || rc=$?
[ "${INTEROP_VERBOSE:-0}" = 1 ] && cat "$CACHE_DIR/logs/rabbitmqadmin.log"
echo "rabbitmqadmin: log in $CACHE_DIR/logs/rabbitmqadmin.log"
if [ "$rc" -gt 1 ]; then
  echo "rabbitmqadmin: runner exited with status $rc$([ "$rc" = 124 ] && echo ' (timeout)')"
  echo "rabbitmqadmin: 0 passed, 1 failed, 0 skipped"
fi
exit $rc
