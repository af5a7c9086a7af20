#!/usr/bin/env bash
# Installs what the suites need, then runs every interop suite against AMQP_URL, one
# after the other (each under its own time limit), continuing after failures.
# Prints every suite's summary line and finally
#   interop: N passed, M failed, K skipped
# (M = unexpected failures). Exit status 1 if any suite had unexpected failures.
# Env: AMQP_URL (required in practice; default amqp://guest:guest@127.0.0.1:5672/),
#      HARE_METRICS_URL (promtool.sh; default http://AMQP_HOST:15692/metrics),
#      HARE_MANAGEMENT_URL (management API base for the rabbitmqadmin and webui suites; default
#      http://127.0.0.1:15672), INTEROP_SKIP_INSTALL=1 to skip install.sh,
#      HARE_AMQPS_URL and HARE_TLS_DIR (tls.sh: the broker's AMQPS listener and the certificates
#      tls-certs.sh wrote; the suite is skipped without them),
#      INTEROP_SUITES="go pyamqp kombu pika amqplib tls celery promtool rabbitmqadmin webui reports"
#      (webui: the web UI in headless Chromium; reports: hareperf's HTML pages rendered by
#      headless Chromium, needs no broker),
#      INTEROP_SUITE_LIMIT (seconds per suite, default 300), INTEROP_VERBOSE=1.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}
export HARE_MANAGEMENT_URL=${HARE_MANAGEMENT_URL:-http://127.0.0.1:15672}
t0=$(date +%s)
status=0
if [ "${INTEROP_SKIP_INSTALL:-0}" != 1 ]; then
  if ! timeout 900 "$here/install.sh"; then
    echo "interop: install.sh failed"
    echo "interop: 0 passed, 1 failed, 0 skipped"
    exit 1
  fi
fi
t1=$(date +%s)
metrics_host=$(sed -E 's#^[a-z]+://([^@/]*@)?(\[[^]]*\]|[^:/]*).*#\2#' <<<"$AMQP_URL")
export HARE_METRICS_URL=${HARE_METRICS_URL:-http://${metrics_host:-127.0.0.1}:15692/metrics}
hide_password() { sed -E 's#//([^:@/]*):[^@/]*@#//\1:***@#' <<<"$1"; }
suites=${INTEROP_SUITES:-go pyamqp kombu pika amqplib tls celery promtool rabbitmqadmin webui reports}
mgmt=
[[ " $suites " == *" rabbitmqadmin "* || " $suites " == *" webui "* ]] && mgmt=", management API $(hide_password "$HARE_MANAGEMENT_URL")"
echo "interop: running against $(hide_password "$AMQP_URL") (metrics: $HARE_METRICS_URL$mgmt)"
tp=0 tf=0 ts=0 summaries=()
for suite in $suites; do
  s0=$(date +%s)
  out=$(timeout -k 10 "${INTEROP_SUITE_LIMIT:-300}" "$here/$suite.sh" 2>&1); rc=$?
  printf '%s\n' "$out"
  line=$(printf '%s\n' "$out" | grep -E "^$suite: [0-9]+ passed, [0-9]+ failed" | tail -1)
  if [ -z "$line" ]; then
    line="$suite: 0 passed, 1 failed, 0 skipped"
    echo "$suite: no summary line (exit status $rc)"
  fi
  p=$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")
  f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
  k=$(grep -oE '[0-9]+ skipped' <<<"$line" | cut -d' ' -f1); k=${k:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "$suite: exit status $rc without failures counted; counting 1"; fi
  [ "$f" -gt 0 ] && status=1
  tp=$((tp + p)) tf=$((tf + f)) ts=$((ts + k))
  summaries+=("$line  [$(( $(date +%s) - s0 ))s]")
done
t2=$(date +%s)
echo "----"
printf '%s\n' "${summaries[@]}"
echo "interop: wall time $((t2 - t1))s for the suites, $((t2 - t0))s including install"
echo "interop: $tp passed, $tf failed, $ts skipped"
exit $status
