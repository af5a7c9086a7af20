#!/usr/bin/env bash
# TLS: pika (tls_pika.py) and amqp091-go (tls_go/main.go, built offline in GOPATH mode from
# Debian's amqp091-go source, as go.sh does) against HARE_AMQPS_URL, with the certificates
# tls-certs.sh wrote into HARE_TLS_DIR. The broker must run with
#   --tls-listen ADDR --tls-cert DIR/server.pem --tls-key DIR/server.key
#   --tls-ca DIR/ca.pem --tls-verify-peer
# (.ci/run starts it so). Skipped when HARE_AMQPS_URL or HARE_TLS_DIR is unset.
set -uo pipefail
. "$(dirname "$0")/lib/common.sh"
if [ -z "${HARE_AMQPS_URL:-}" ] || [ -z "${HARE_TLS_DIR:-}" ]; then
  echo "tls: HARE_AMQPS_URL or HARE_TLS_DIR not set (needs a broker with a TLS listener; .ci/run starts one)"
  echo "tls: 0 passed, 0 failed, 1 skipped"
  exit 0
fi
need_venv || { echo "tls: 0 passed, 1 failed"; exit 1; }
logdir=$CACHE_DIR/logs; mkdir -p "$logdir"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
results=$work/tls.results log=$work/tls.log
: > "$results"
crash=()
timeout -k 10 120 "$PY" "$INTEROP_DIR/tls_pika.py" --results "$results" >>"$log" 2>&1 \
  || crash+=(--crash "<tls_pika.py exited with status $?>")
mkdir -p "$work/src/hare-tls"
cp "$INTEROP_DIR/tls_go/main.go" "$work/src/hare-tls/"
if (
  cd "$work/src/hare-tls"
  export GOPATH=$work:/usr/share/gocode GO111MODULE=off GOFLAGS= GOPROXY=off GOTOOLCHAIN=local
  export GOCACHE=$CACHE_DIR/go-build
  go build -o "$work/tls-go" .
) >>"$log" 2>&1; then
  timeout -k 10 120 "$work/tls-go" "$results" >>"$log" 2>&1 \
    || crash+=(--crash "<tls-go exited with status $?>")
else
  crash+=(--crash "<the Go TLS client did not build (see $logdir/tls.log)>")
fi
[ "${INTEROP_VERBOSE:-0}" = 1 ] && cat "$log"
grep -E "^tls: .* failed" "$log" | head -20
cp "$log" "$logdir/tls.log"; echo "tls: log in $logdir/tls.log"
python3 "$INTEROP_DIR/lib/summarize.py" --suite tls --results "$results" \
  --known "$INTEROP_DIR/tls-known-failures.txt" "${crash[@]}"
