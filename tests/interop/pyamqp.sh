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
run_pytest pyamqp "$CACHE_DIR/src/amqp-$AMQP_VERSION" t/integration
