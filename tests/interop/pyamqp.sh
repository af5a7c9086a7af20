#!/usr/bin/env bash
# py-amqp's own integration tests (t/integration of the amqp sdist) against AMQP_URL.
# Upstream finds the broker through RABBITMQ_HOST, RABBITMQ_5672_TCP (plain port) and
# RABBITMQ_5671_TCP (TLS port); credentials/vhost are hard-coded guest/guest and "/"
# upstream, lib/pytest_interop.py substitutes the ones in AMQP_URL if they differ.
set -uo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$INTEROP_DIR/lib/run_pytest.sh"
export RABBITMQ_HOST=$AMQP_HOST RABBITMQ_5672_TCP=$AMQP_PORT
export RABBITMQ_5671_TCP=${AMQPS_PORT:-5671}
# With a TLS broker (.ci/run), the TLS variants run too: the t/certs/ files they read (absent
# from the sdist) come from HARE_TLS_DIR (tls-certs.sh), the "broken" pair being a self-signed
# certificate the broker's CA did not sign, and they are no longer allowed to fail.
src=$CACHE_DIR/src/amqp-$AMQP_VERSION
if [ -n "${HARE_AMQPS_URL:-}" ] && [ -n "${HARE_TLS_DIR:-}" ]; then
  RABBITMQ_5671_TCP=$(sed -E 's#^amqps://([^@/]*@)?[^/]*:([0-9]+).*#\2#' <<<"$HARE_AMQPS_URL")
  mkdir -p "$src/t/certs"
  cp "$HARE_TLS_DIR/ca.pem" "$src/t/certs/ca_certificate.pem"
  cp "$HARE_TLS_DIR/client-guest.pem" "$src/t/certs/client_certificate.pem"
  cp "$HARE_TLS_DIR/client-guest.key" "$src/t/certs/client_key.pem"
  cp "$HARE_TLS_DIR/other-ca.pem" "$src/t/certs/client_certificate_broken.pem"
  cp "$HARE_TLS_DIR/other-ca.key" "$src/t/certs/client_key_broken.pem"
  known=$(mktemp); trap 'rm -f "$known"' EXIT
  grep -v "# without a TLS listener" "$INTEROP_DIR/pyamqp-known-failures.txt" > "$known"
  export KNOWN_FAILURES=$known
fi
run_pytest pyamqp "$src" t/integration
