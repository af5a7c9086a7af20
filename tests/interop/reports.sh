#!/usr/bin/env bash
# hareperf's HTML reports in a real browser: Debian's headless Chromium renders the pages
# hareperf writes from the recorded runs in loadtest/tests/fixtures/, and each screenshot
# must not be blank. Needs no broker.
#   HAREPERF_BIN  the hareperf binary (default target/debug/hareperf, built with cargo if
#                 missing)
# Cases, per page (a single backlog run; Hare against RabbitMQ, medians of three backlog runs
# each; a short and a long run side by side): hareperf writes it, it refers to nothing outside
# itself (no src, href, url() or http), Chromium screenshots it, and the screenshot has ink
# and colours (lib/png_check.py, standard library only).
# Last line: `reports: N passed, M failed, 0 skipped`; exit 1 iff M > 0.
set -uo pipefail
. "$(dirname "$0")/lib/common.sh"
root=$(cd "$INTEROP_DIR/../.." && pwd)
fixtures=$root/loadtest/tests/fixtures
HAREPERF=${HAREPERF_BIN:-$root/target/debug/hareperf}
passed=0 failed=0
pass() { passed=$((passed + 1)); [ "${INTEROP_VERBOSE:-0}" = 1 ] && echo "ok: $1"; return 0; }
fail() { failed=$((failed + 1)); echo "FAILED: $1"; }
finish() { echo "reports: $passed passed, $failed failed, 0 skipped"; [ "$failed" -eq 0 ]; exit $?; }

if ! command -v chromium >/dev/null; then
  fail "chromium is not installed; run $INTEROP_DIR/install.sh first"
  finish
fi
if [ ! -x "$HAREPERF" ]; then
  (cd "$root" && cargo build -q -p hare-loadtest --bin hareperf) || { fail "building hareperf"; finish; }
fi
echo "reports: $("$HAREPERF" --version 2>/dev/null || echo hareperf), $(chromium --version 2>/dev/null | cut -d' ' -f1-2)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# check_page NAME HEIGHT -- hareperf compare arguments…
check_page() {
  local name=$1 height=$2
  shift 3
  local page=$work/$name.html png=$work/$name.png
  if ! "$HAREPERF" compare --html "$page" "$@" >"$work/$name.md" 2>&1 || [ ! -s "$page" ]; then
    fail "$name: hareperf compare --html: $(tail -3 "$work/$name.md")"
    return
  fi
  pass "$name: written"
  if grep -qiE 'src=|href=|url\(|@import|https?:' "$page"; then
    fail "$name: refers outside the page: $(grep -oiE '(src=|href=|url\(|@import|https?:).{0,40}' "$page" | head -3)"
  else
    pass "$name: self-contained"
  fi
  local profile
  profile=$(mktemp -d "$work/profile.XXXXXX")
  timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --window-size="1280,$height" --screenshot="$png" \
    "file://$page" >"$work/$name.chromium.log" 2>&1
  if [ ! -s "$png" ]; then
    fail "$name: no screenshot: $(tail -3 "$work/$name.chromium.log")"
    return
  fi
  pass "$name: screenshot"
  local verdict
  if verdict=$(python3 "$INTEROP_DIR/lib/png_check.py" "$png" 20 64 2>&1); then
    pass "$name: not blank ($verdict)"
  else
    fail "$name: blank or nearly ($verdict)"
  fi
  [ -n "${REPORTS_KEEP:-}" ] && mkdir -p "$REPORTS_KEEP" && cp "$page" "$png" "$REPORTS_KEEP/"
}

check_page single 2000 -- "$fixtures/backlog/hare-2.json"
check_page backlog-compare 2400 -- --median-runs "$fixtures"/backlog/hare-{1,2,3}.json \
  "$fixtures"/backlog/rabbitmq-{1,2,3}.json
check_page short-long 2400 -- "$fixtures/transient-hare.json" "$fixtures/long-hare.json"
finish
