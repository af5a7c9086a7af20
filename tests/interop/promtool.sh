#!/usr/bin/env bash
# Prometheus' own checker (`promtool check metrics`, Debian's prometheus package) on the
# broker's metrics endpoints, plus the families RabbitMQ's dashboards and alerts read, each
# with rabbitmq_prometheus's type.
#   HARE_METRICS_URL  the aggregated endpoint (default http://AMQP_HOST:15692/metrics);
#                     /per-object and /detailed are found beside it.
# Cases: per endpoint (/metrics, /metrics/per-object, /metrics/detailed with every group):
# answered 200, Content-Type of the text format 0.0.4, parsed by promtool, and no lint
# finding on a rabbitmq_* family (RabbitMQ's own erlang_* and telemetry families have lint
# findings; they are printed as notes, not failures). Then one case per required family.
# Last line: `promtool: N passed, M failed`; exit 1 iff M > 0.
set -uo pipefail
. "$(dirname "$0")/lib/common.sh"
METRICS_URL=${HARE_METRICS_URL:-http://$AMQP_HOST:15692/metrics}
base=${METRICS_URL%/}
base=${base%/metrics}
passed=0 failed=0
pass() { passed=$((passed + 1)); [ "${INTEROP_VERBOSE:-0}" = 1 ] && echo "ok: $1"; return 0; }
fail() { failed=$((failed + 1)); echo "FAILED: $1"; }

if ! command -v promtool >/dev/null; then
  echo "promtool: not installed; run $INTEROP_DIR/install.sh first"
  echo "promtool: 0 passed, 1 failed"
  exit 1
fi
echo "promtool: $(promtool --version 2>&1 | head -1) against $base"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
groups="connection_churn_metrics node_coarse_metrics node_metrics queue_coarse_metrics"
groups="$groups queue_metrics channel_metrics channel_exchange_metrics channel_queue_metrics"
groups="$groups connection_coarse_metrics connection_metrics channel_queue_exchange_metrics"
detailed="/metrics/detailed?$(printf 'family=%s&' $groups)vhost=%2F"
for path in /metrics /metrics/per-object "$detailed"; do
  name=${path%%\?*}
  status=$(curl -sS -m 20 -o "$work/body" -D "$work/headers" -w '%{http_code}' "$base$path" 2>"$work/curl")
  if [ "$status" != 200 ]; then
    fail "$name: HTTP status $status $(cat "$work/curl")"
    continue
  fi
  pass "$name: 200"
  type=$(grep -i '^content-type:' "$work/headers" | head -1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//')
  case $type in
    "text/plain; version=0.0.4"*) pass "$name: Content-Type $type" ;;
    *) fail "$name: Content-Type '$type'" ;;
  esac
  promtool check metrics <"$work/body" >"$work/lint" 2>&1
  rc=$?
  ours=$(grep -E '^rabbitmq_' "$work/lint")
  others=$(grep -cE '^(erlang_|telemetry_)' "$work/lint")
  # Exit 3 is lint findings only; accepted when every one is on a family that is not ours.
  if [ "$rc" -eq 3 ] && ! grep -qvE '^(erlang_|telemetry_)' "$work/lint"; then
    rc=0
  fi
  if [ "$rc" -ne 0 ] || [ -n "$ours" ]; then
    fail "$name: promtool check metrics (exit $rc):"
    sed 's/^/    /' "$work/lint" | head -40
  else
    [ "$others" -gt 0 ] && echo "note: $name: $others lint findings on erlang_*/telemetry families (not checked)"
    pass "$name: promtool check metrics"
  fi
  [ "$name" = /metrics ] && cp "$work/body" "$work/aggregated"
done

# The families RabbitMQ's Grafana dashboards and alerts read, with the plugin's types.
required="
rabbitmq_queue_messages_ready gauge
rabbitmq_queue_messages_unacked gauge
rabbitmq_queue_messages gauge
rabbitmq_queue_consumers gauge
rabbitmq_queues gauge
rabbitmq_connections gauge
rabbitmq_channels gauge
rabbitmq_consumers gauge
rabbitmq_connections_opened_total counter
rabbitmq_connections_closed_total counter
rabbitmq_channels_opened_total counter
rabbitmq_channels_closed_total counter
rabbitmq_channel_messages_published_total counter
rabbitmq_channel_messages_confirmed_total counter
rabbitmq_channel_messages_delivered_total counter
rabbitmq_channel_messages_delivered_ack_total counter
rabbitmq_channel_messages_acked_total counter
rabbitmq_channel_messages_redelivered_total counter
rabbitmq_channel_get_total counter
rabbitmq_channel_get_ack_total counter
rabbitmq_global_messages_received_total counter
rabbitmq_global_messages_received_confirm_total counter
rabbitmq_global_messages_delivered_total counter
rabbitmq_global_messages_acknowledged_total counter
rabbitmq_global_messages_confirmed_total counter
rabbitmq_global_messages_routed_total counter
rabbitmq_global_messages_unroutable_dropped_total counter
rabbitmq_global_messages_unroutable_returned_total counter
rabbitmq_global_publishers gauge
rabbitmq_process_resident_memory_bytes gauge
rabbitmq_process_open_fds gauge
rabbitmq_process_max_fds gauge
rabbitmq_disk_space_available_bytes gauge
rabbitmq_resident_memory_limit_bytes gauge
rabbitmq_alarms_memory_used_watermark untyped
rabbitmq_alarms_free_disk_space_watermark untyped
rabbitmq_alarms_file_descriptor_limit untyped
rabbitmq_build_info untyped
rabbitmq_identity_info untyped
"
if [ -f "$work/aggregated" ]; then
  while read -r family kind; do
    [ -z "$family" ] && continue
    if grep -qx "# TYPE $family $kind" "$work/aggregated"; then
      pass "$family $kind"
    else
      fail "/metrics: no '# TYPE $family $kind'"
    fi
  done <<<"$required"
else
  fail "/metrics: no body to look for the required families in"
fi

echo "promtool: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
