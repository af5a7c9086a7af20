#!/usr/bin/env bash
# The web UI in a real headless Chromium (Debian's chromium and chromedriver, driven by
# Selenium from the venv): the pytest files in webui/ against the UI at HARE_MANAGEMENT_URL
# (the base, e.g. http://127.0.0.1:15672), with AMQP_URL for publishing and reading messages
# with pika. Each step saves a screenshot under WEBUI_SCREENSHOTS (default
# $CACHE_DIR/webui-shots). Prints "webui: N passed, M failed, K skipped".
set -uo pipefail
. "$(dirname "$0")/lib/common.sh"
need_venv || { echo "webui: 0 passed, 1 failed, 0 skipped"; exit 1; }
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "webui: chromium or chromedriver missing; run install.sh" >&2
  echo "webui: 0 passed, 1 failed, 0 skipped"; exit 1
fi
export HARE_MANAGEMENT_URL=${HARE_MANAGEMENT_URL:-http://127.0.0.1:15672}
export WEBUI_SCREENSHOTS=${WEBUI_SCREENSHOTS:-$CACHE_DIR/webui-shots}
export PYTHONDONTWRITEBYTECODE=1
mkdir -p "$CACHE_DIR/logs" "$WEBUI_SCREENSHOTS"
log="$CACHE_DIR/logs/webui.log"
rc=0
timeout -k 10 "${SUITE_TIMEOUT:-280}" "$PY" -m pytest -p no:cacheprovider -q -rfE \
  --timeout 120 "$INTEROP_DIR/webui" "$@" >"$log" 2>&1 || rc=$?
[ "${INTEROP_VERBOSE:-0}" = 1 ] && cat "$log"
tail -30 "$log" | grep -E "passed|failed|error|FAILED|ERROR" | head -30
summary=$(grep -E "^[0-9]+ (passed|failed)|^=+ .*(passed|failed|error)" "$log" | tail -1)
passed=$(grep -oE '[0-9]+ passed' <<<"$summary" | cut -d' ' -f1); passed=${passed:-0}
failed=$(grep -oE '[0-9]+ (failed|errors?)' <<<"$summary" | awk '{s += $1} END {print s + 0}')
skipped=$(grep -oE '[0-9]+ skipped' <<<"$summary" | cut -d' ' -f1); skipped=${skipped:-0}
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "webui: screenshots in $WEBUI_SCREENSHOTS, log in $log"
echo "webui: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
