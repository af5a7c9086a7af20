#!/usr/bin/env bash
# kombu's own integration tests for its py-amqp transport (t/integration/test_py_amqp.py
# of the kombu sdist) against AMQP_URL. The redis/mongodb/sqs/kafka/pgmq files of
# t/integration are not run. Upstream finds the broker through RABBITMQ_HOST and
# RABBITMQ_5672_TCP; credentials/vhost are the transport defaults guest/guest and "/",
# lib/pytest_interop.py substitutes the ones in AMQP_URL if they differ.
set -uo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$INTEROP_DIR/lib/run_pytest.sh"
export RABBITMQ_HOST=$AMQP_HOST RABBITMQ_5672_TCP=$AMQP_PORT
# Fixed-name queues of the upstream tests; test_publish_requeue_consume fails on a
# second run if priority_requeue_test still holds the first run's unacked messages.
"$PY" "$INTEROP_DIR/lib/delete_queues.py" test test_empty direct1 fanout1 fanout2 \
  rk_direct1 rk_direct2 topic1 topic2 topic3 ttl_test simple_buffer_test \
  ttl_simple_buffer_test simple_queue_test ttl_simple_queue_test test_ack \
  test_reject_no_requeue test_reject_requeue test_requeue priority_test \
  priority_requeue_test priority_simple_queue_test 2>&1 | sed 's/^/kombu: /' >&2
run_pytest kombu "$CACHE_DIR/src/kombu-$KOMBU_VERSION" t/integration/test_py_amqp.py
