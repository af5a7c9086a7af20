'use strict';
// amqplib's promise API against the broker at AMQP_URL, the way Node applications use it.
// Every name is suffixed with a random tag so reruns against a shared broker do not
// interfere; every test closes its connections (and deletes its non-exclusive queues).
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { randomBytes } = require('node:crypto');
const amqp = require('amqplib');

const URL = process.env.AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672/';
const TEST_TIMEOUT = Number(process.env.AMQPLIB_TEST_TIMEOUT_MS || 10000);
const WAIT = Number(process.env.AMQPLIB_WAIT_MS || 5000);

// Every test has TEST_TIMEOUT; waits inside a test give up after WAIT. With 23 tests a
// broker that stops answering costs at most ~230 s, under the suite's 280 s.
const uniq = (name) => `interop.amqplib.${name}.${randomBytes(4).toString('hex')}`;

// Opens a connection for one test; afterwards runs the test's cleanups (cleanup(conn, fn),
// on a fresh channel) and closes it (ignoring "already closed").
async function withConnection(t) {
  const conn = await connect();
  // A channel or connection error is asserted by the test that provokes it; an
  // unhandled 'error' event must not crash the runner.
  conn.on('error', () => {});
  conn.cleanups = [];
  t.after(async () => {
    try {
      if (conn.cleanups.length > 0) {
        const ch = await channel(conn);
        for (const fn of conn.cleanups) await fn(ch);
      }
    } finally {
      await conn.close().catch(() => {});
    }
  });
  return conn;
}

function cleanup(conn, fn) {
  conn.cleanups.push(fn);
}

async function channel(conn) {
  const ch = await conn.createChannel();
  ch.on('error', () => {});
  return ch;
}

// Resolves with the first `n` values pushed to the returned `push`, or rejects after WAIT.
function collector(n, what) {
  const items = [];
  let done;
  const promise = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`timed out waiting for ${what}: got ${items.length} of ${n}`)),
      WAIT,
    );
    done = () => {
      clearTimeout(timer);
      resolve(items);
    };
  });
  const push = (x) => {
    items.push(x);
    if (items.length === n) done();
  };
  return { items, push, promise };
}

function once(emitter, event) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for '${event}'`)), WAIT);
    emitter.once(event, (x) => {
      clearTimeout(timer);
      resolve(x);
    });
  });
}

// amqplib's `timeout` socket option bounds the TCP connect and the AMQP handshake.
const connect = () => amqp.connect(URL, { timeout: WAIT });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond, what) {
  const deadline = Date.now() + WAIT;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

// Polls channel.get until it returns a message or WAIT passes.
async function getEventually(ch, queue) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const m = await ch.get(queue, { noAck: true });
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`no message on ${queue} within ${WAIT} ms`);
    await sleep(50);
  }
}

const opts = { timeout: TEST_TIMEOUT };

test('connect-by-url', opts, async (t) => {
  const conn = await withConnection(t);
  const props = conn.connection.serverProperties;
  assert.ok(props, 'server properties from connection.start');
  assert.equal(typeof props.product, 'string');
  assert.ok(conn.connection.frameMax >= 4096, `frameMax ${conn.connection.frameMax}`);
  const ch = await channel(conn);
  const ok = await ch.assertQueue('', { exclusive: true });
  assert.match(ok.queue, /^amq\.gen-/);
});

test('assert-queue-and-exchange', opts, async (t) => {
  const conn = await withConnection(t);
  const ch = await channel(conn);
  const q = uniq('declare');
  const x = uniq('declare-x');
  cleanup(conn, async (c) => {
    await c.deleteQueue(q);
    await c.deleteExchange(x);
  });
  const ok = await ch.assertQueue(q, { durable: false });
  assert.deepEqual(ok, { queue: q, messageCount: 0, consumerCount: 0 });
  // Redeclaring with the same properties is fine and reports the current counts.
  ch.sendToQueue(q, Buffer.from('one'));
  const again = await ch.assertQueue(q, { durable: false });
  assert.equal(again.messageCount, 1);
  assert.deepEqual(await ch.assertExchange(x, 'direct', { durable: false }), { exchange: x });
  await ch.checkExchange(x);
  const checked = await ch.checkQueue(q);
  assert.equal(checked.queue, q);
});

test('inequivalent-queue-redeclare-406', opts, async (t) => {
  const conn = await withConnection(t);
  const ch = await channel(conn);
  const q = uniq('inequivalent');
  cleanup(conn, (c) => c.deleteQueue(q));
  await ch.assertQueue(q, { durable: false });
  const closed = once(ch, 'close');
  await assert.rejects(ch.assertQueue(q, { durable: true }), (err) => {
    assert.equal(err.code, 406);
    assert.match(
      err.message,
      new RegExp(`PRECONDITION_FAILED - inequivalent arg 'durable' for queue '${q.replace(/\./g, '\\.')}' in vhost '[^']*': received 'true' but current is 'false'`),
    );
    return true;
  });
  await closed;
  // The channel is gone; the connection is not.
  await assert.rejects(ch.checkQueue(q), /Channel closed|closed/);
  const other = await channel(conn);
  assert.equal((await other.checkQueue(q)).queue, q);
});

test('inequivalent-exchange-redeclare-406', opts, async (t) => {
  const conn = await withConnection(t);
  const ch = await channel(conn);
  const x = uniq('inequivalent-x');
  cleanup(conn, (c) => c.deleteExchange(x));
  await ch.assertExchange(x, 'fanout', { durable: false });
  await assert.rejects(ch.assertExchange(x, 'topic', { durable: false }), (err) => {
    assert.equal(err.code, 406);
    assert.match(err.message, /PRECONDITION_FAILED - inequivalent arg 'type' for exchange '[^']+' in vhost '[^']*': received 'topic' but current is 'fanout'/);
    return true;
  });
});

test('check-missing-queue-404', opts, async (t) => {
  const conn = await withConnection(t);
  const ch = await channel(conn);
  const q = uniq('missing');
  const closed = once(ch, 'close');
  await assert.rejects(ch.checkQueue(q), (err) => {
    assert.equal(err.code, 404);
    assert.match(err.message, new RegExp(`NOT_FOUND - no queue '${q.replace(/\./g, '\\.')}' in vhost '[^']*'`));
    return true;
  });
  await closed;
  await assert.rejects(channel(conn).then((c) => c.checkExchange(uniq('missing-x'))), (err) => {
    assert.equal(err.code, 404);
    assert.match(err.message, /NOT_FOUND - no exchange '[^']+' in vhost '[^']*'/);
    return true;
  });
});

test('publish-consume-ack', opts, async (t) => {
  const conn = await withConnection(t);
  const ch = await channel(conn);
  const { queue } = await ch.assertQueue('', { exclusive: true });
  const got = collector(10, 'deliveries');
  const { consumerTag } = await ch.consume(queue, (msg) => {
    got.push(msg);
    ch.ack(msg);
  });
  for (let i = 0; i < 10; i++) ch.sendToQueue(queue, Buffer.from(`m${i}`));
  const msgs = await got.promise;
  assert.deepEqual(msgs.map((m) => m.content.toString()), [...Array(10).keys()].map((i) => `m${i}`));
  for (const m of msgs) {
    assert.equal(m.fields.consumerTag, consumerTag);
    assert.equal(m.fields.redelivered, false);
    assert.equal(m.fields.exchange, '');
    assert.equal(m.fields.routingKey, queue);
  }
  assert.deepEqual(
    msgs.map((m) => m.fields.deliveryTag),
    [...Array(10).keys()].map((i) => i + 1),
  );
  await ch.cancel(consumerTag);
  // All acked: nothing left.
  assert.equal((await ch.checkQueue(queue)).messageCount, 0);
});

test('nack-requeue-redelivered', opts, async (t) => {
  const conn = await withConnection(t);
  const ch = await channel(conn);
  const { queue } = await ch.assertQueue('', { exclusive: true });
  const got = collector(2, 'delivery and redelivery');
  await ch.consume(queue, (msg) => {
    got.push(msg);
    if (got.items.length === 1) ch.nack(msg, false, true);
    else ch.ack(msg);
  });
  ch.sendToQueue(queue, Buffer.from('again'));
  const [first, second] = await got.promise;
  assert.equal(first.fields.redelivered, false);
  assert.equal(second.fields.redelivered, true);
  assert.equal(second.content.toString(), 'again');
});

test('nack-without-requeue-drops', opts, async (t) => {
  const conn = await withConnection(t);
  const ch = await channel(conn);
  const { queue } = await ch.assertQueue('', { exclusive: true });
  ch.sendToQueue(queue, Buffer.from('a'));
  ch.sendToQueue(queue, Buffer.from('b'));
  assert.equal((await getEventually(ch, queue)).content.toString(), 'a');
  // Manual acknowledgement: nack without requeue, and reject without requeue, drop.
  const b = await ch.get(queue, { noAck: false });
  assert.equal(b.content.toString(), 'b');
  ch.nack(b, false, false);
  ch.sendToQueue(queue, Buffer.from('c'));
  const c = await getEventuallyAck(ch, queue);
  ch.reject(c, false);
  // Had either been kept unacked, closing the channel would requeue it.
  await ch.close();
  const after = await channel(conn);
  assert.equal((await after.checkQueue(queue)).messageCount, 0);
  assert.equal(await after.get(queue), false);
});

async function getEventuallyAck(ch, queue) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const m = await ch.get(queue, { noAck: false });
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`no message on ${queue} within ${WAIT} ms`);
    await sleep(50);
  }
}

test('prefetch-limits-unacked', opts, async (t) => {
  const conn = await withConnection(t);
  const ch = await channel(conn);
  const { queue } = await ch.assertQueue('', { exclusive: true });
  for (let i = 0; i < 20; i++) ch.sendToQueue(queue, Buffer.from(`p${i}`));
  await ch.prefetch(3);
  const held = [];
  await ch.consume(queue, (msg) => held.push(msg));
  await waitFor(() => held.length >= 3, 'three deliveries');
  // Without acks the broker stops at the prefetch count.
  await sleep(300);
  assert.equal(held.length, 3);
  // Acking one lets exactly one more through.
  ch.ack(held[0]);
  await waitFor(() => held.length >= 4, 'the fourth delivery');
  await sleep(300);
  assert.equal(held.length, 4);
  assert.equal(held[3].content.toString(), 'p3');
  // Acking the rest as they come (multiple) lets everything flow, in order.
  let acked = 0;
  await waitFor(() => {
    if (held.length > acked) {
      ch.ack(held[held.length - 1], true);
      acked = held.length;
    }
    return held.length === 20;
  }, 'all 20 deliveries');
  assert.deepEqual(held.map((x) => x.content.toString()), [...Array(20).keys()].map((i) => `p${i}`));
  assert.equal((await ch.checkQueue(queue)).messageCount, 0);
});

test('basic-get-and-empty', opts, async (t) => {
  const conn = await withConnection(t);
  const ch = await channel(conn);
  const { queue } = await ch.assertQueue('', { exclusive: true });
  assert.equal(await ch.get(queue), false);
  ch.sendToQueue(queue, Buffer.from('x'));
  ch.sendToQueue(queue, Buffer.from('y'));
  const x = await getEventuallyAck(ch, queue);
  assert.equal(x.content.toString(), 'x');
  // messageCount is what is left after this one.
  assert.equal(x.fields.messageCount, 1);
  assert.equal(x.fields.redelivered, false);
  ch.ack(x);
  const y = await ch.get(queue, { noAck: true });
  assert.equal(y.content.toString(), 'y');
  assert.equal(y.fields.messageCount, 0);
  assert.equal(await ch.get(queue), false);
});

test('topic-routing', opts, async (t) => {
  const conn = await withConnection(t);
  const ch = await channel(conn);
  const x = uniq('topic');
  cleanup(conn, (c) => c.deleteExchange(x));
  await ch.assertExchange(x, 'topic', { durable: false, autoDelete: false });
  const qs = {};
  for (const [name, pattern] of [
    ['orange', '*.orange.*'],
    ['rabbit', '*.*.rabbit'],
    ['lazy', 'lazy.#'],
  ]) {
    qs[name] = (await ch.assertQueue('', { exclusive: true })).queue;
    await ch.bindQueue(qs[name], x, pattern);
  }
  const keys = ['quick.orange.rabbit', 'lazy.orange.elephant', 'quick.orange.fox', 'lazy.brown.fox', 'lazy', 'quick.brown.fox', 'orange'];
  for (const k of keys) ch.publish(x, k, Buffer.from(k));
  const expect = {
    orange: ['quick.orange.rabbit', 'lazy.orange.elephant', 'quick.orange.fox'],
    rabbit: ['quick.orange.rabbit'],
    lazy: ['lazy.orange.elephant', 'lazy.brown.fox', 'lazy'],
  };
  // A marker on every queue through the default exchange: once it arrives, everything
  // published before it on this channel has been routed.
  for (const q of Object.values(qs)) ch.sendToQueue(q, Buffer.from('END'));
  for (const [name, q] of Object.entries(qs)) {
    const seen = [];
    for (;;) {
      const m = await getEventually(ch, q);
      if (m.content.toString() === 'END') break;
      seen.push(m.content.toString());
    }
    assert.deepEqual(seen, expect[name], `queue bound for ${name}`);
  }
  // Unbinding stops the routing.
  await ch.unbindQueue(qs.lazy, x, 'lazy.#');
  ch.publish(x, 'lazy.dog', Buffer.from('lazy.dog'));
  ch.sendToQueue(qs.lazy, Buffer.from('END'));
  assert.equal((await getEventually(ch, qs.lazy)).content.toString(), 'END');
});

test('fanout-routing', opts, async (t) => {
  const conn = await withConnection(t);
  const ch = await channel(conn);
  const x = uniq('fanout');
  cleanup(conn, (c) => c.deleteExchange(x));
  await ch.assertExchange(x, 'fanout', { durable: false });
  const q1 = (await ch.assertQueue('', { exclusive: true })).queue;
  const q2 = (await ch.assertQueue('', { exclusive: true })).queue;
  const q3 = (await ch.assertQueue('', { exclusive: true })).queue;
  await ch.bindQueue(q1, x, '');
  await ch.bindQueue(q2, x, 'ignored-key');
  const got = collector(2, 'fanout copies');
  for (const q of [q1, q2]) await ch.consume(q, (m) => got.push([q, m.content.toString(), m.fields.routingKey]), { noAck: true });
  ch.publish(x, 'any.key', Buffer.from('hello'));
  const copies = await got.promise;
  assert.deepEqual(copies.map((c) => c[0]).sort(), [q1, q2].sort());
  for (const c of copies) assert.deepEqual(c.slice(1), ['hello', 'any.key']);
  // The unbound queue gets nothing.
  ch.sendToQueue(q3, Buffer.from('END'));
  assert.equal((await getEventually(ch, q3)).content.toString(), 'END');
});

test('mandatory-return-before-confirm', opts, async (t) => {
  const conn = await withConnection(t);
  const ch = await conn.createConfirmChannel();
  ch.on('error', () => {});
  const order = [];
  const returned = new Promise((resolve) => {
    ch.on('return', (msg) => {
      order.push('return');
      resolve(msg);
    });
  });
  const key = uniq('nowhere');
  const confirmed = new Promise((resolve, reject) => {
    ch.publish('amq.direct', key, Buffer.from('lost'), { mandatory: true, messageId: 'm-1' }, (err) => {
      order.push('confirm');
      if (err) reject(err);
      else resolve();
    });
  });
  const [msg] = await Promise.all([returned, confirmed]);
  assert.deepEqual(order, ['return', 'confirm']);
  assert.equal(msg.fields.replyCode, 312);
  assert.equal(msg.fields.replyText, 'NO_ROUTE');
  assert.equal(msg.fields.exchange, 'amq.direct');
  assert.equal(msg.fields.routingKey, key);
  assert.equal(msg.content.toString(), 'lost');
  assert.equal(msg.properties.messageId, 'm-1');
});

test('confirm-channel-640-multiple-ack', opts, async (t) => {
  const conn = await withConnection(t);
  const ch = await conn.createConfirmChannel();
  ch.on('error', () => {});
  const { queue } = await ch.assertQueue('', { exclusive: true });
  // Every basic.ack the broker sends is emitted as 'ack' with its fields.
  const acks = [];
  ch.on('ack', (fields) => acks.push(fields));
  ch.on('nack', (fields) => acks.push({ ...fields, nack: true }));
  const N = 640;
  const fired = new Array(N).fill(false);
  const errors = [];
  for (let i = 0; i < N; i++) {
    ch.sendToQueue(queue, Buffer.from(`c${i}`), {}, (err) => {
      if (err) errors.push(err);
      fired[i] = true;
    });
  }
  await ch.waitForConfirms();
  assert.deepEqual(errors, []);
  assert.equal(fired.filter(Boolean).length, N, 'every publish callback fired');
  assert.ok(!acks.some((a) => a.nack), 'no nacks');
  assert.ok(acks.some((a) => a.multiple === true), `at least one multiple ack among ${acks.length}`);
  // The acks cover tags 1..N exactly once, in order.
  let next = 1;
  for (const a of acks) {
    assert.ok(a.deliveryTag >= next, `tag ${a.deliveryTag} after ${next - 1}`);
    if (!a.multiple) assert.equal(a.deliveryTag, next);
    next = a.deliveryTag + 1;
  }
  assert.equal(next, N + 1);
  assert.equal((await ch.checkQueue(queue)).messageCount, N);
});

test('server-named-exclusive-queue', opts, async (t) => {
  const conn = await withConnection(t);
  const ch = await channel(conn);
  const { queue } = await ch.assertQueue('', { exclusive: true });
  assert.match(queue, /^amq\.gen-[A-Za-z0-9_-]+$/);
  // Another connection may not use it.
  const other = await connect();
  other.on('error', () => {});
  t.after(() => other.close().catch(() => {}));
  const och = await channel(other);
  await assert.rejects(och.consume(queue, () => {}), (err) => {
    assert.equal(err.code, 405);
    assert.match(err.message, /RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'amq\.gen-/);
    return true;
  });
  // It disappears with its connection.
  await conn.close();
  const check = await channel(other);
  await assert.rejects(check.checkQueue(queue), (err) => err.code === 404);
});

test('consumer-cancel-on-queue-delete', opts, async (t) => {
  const conn = await withConnection(t);
  const ch = await channel(conn);
  const q = uniq('cancelled');
  await ch.assertQueue(q, { durable: false });
  const calls = collector(1, 'the consume callback with null');
  const { consumerTag } = await ch.consume(q, (msg) => calls.push(msg));
  const cancel = once(ch, 'cancel');
  const admin = await channel(conn);
  await admin.deleteQueue(q);
  const [msg] = await calls.promise;
  assert.equal(msg, null);
  const fields = await cancel;
  assert.equal(fields.consumerTag, consumerTag);
  // The channel stays usable.
  assert.match((await ch.assertQueue('', { exclusive: true })).queue, /^amq\.gen-/);
});

test('ttl-dead-letter-x-death', opts, async (t) => {
  const conn = await withConnection(t);
  const ch = await channel(conn);
  const dlx = uniq('dlx');
  const src = uniq('ttl');
  cleanup(conn, async (c) => {
    await c.deleteQueue(src);
    await c.deleteExchange(dlx);
  });
  await ch.assertExchange(dlx, 'fanout', { durable: false });
  const dlq = (await ch.assertQueue('', { exclusive: true })).queue;
  await ch.bindQueue(dlq, dlx, '');
  await ch.assertQueue(src, {
    durable: false,
    messageTtl: 100,
    deadLetterExchange: dlx,
  });
  ch.sendToQueue(src, Buffer.from('expiring'), { headers: { app: 'interop' } });
  const m = await getEventually(ch, dlq);
  assert.equal(m.content.toString(), 'expiring');
  assert.equal(m.fields.routingKey, src);
  const death = m.properties.headers['x-death'];
  assert.ok(Array.isArray(death) && death.length === 1, `x-death: ${JSON.stringify(death)}`);
  assert.equal(death[0].queue, src);
  assert.equal(death[0].reason, 'expired');
  assert.equal(death[0].exchange, '');
  assert.equal(Number(death[0].count), 1);
  assert.deepEqual(death[0]['routing-keys'], [src]);
  assert.equal(m.properties.headers.app, 'interop');
  assert.equal((await ch.checkQueue(src)).messageCount, 0);
});

test('max-length-drop-head', opts, async (t) => {
  const conn = await withConnection(t);
  const ch = await conn.createConfirmChannel();
  ch.on('error', () => {});
  const { queue } = await ch.assertQueue('', { exclusive: true, maxLength: 3 });
  for (let i = 1; i <= 5; i++) ch.sendToQueue(queue, Buffer.from(`d${i}`));
  await ch.waitForConfirms();
  assert.equal((await ch.checkQueue(queue)).messageCount, 3);
  const left = [];
  for (let m = await ch.get(queue, { noAck: true }); m; m = await ch.get(queue, { noAck: true })) left.push(m.content.toString());
  assert.deepEqual(left, ['d3', 'd4', 'd5']);
});

test('priority-queue', opts, async (t) => {
  const conn = await withConnection(t);
  const ch = await conn.createConfirmChannel();
  ch.on('error', () => {});
  const { queue } = await ch.assertQueue('', { exclusive: true, maxPriority: 10 });
  const sent = [[0, 'low'], [5, 'mid'], [10, 'high'], [undefined, 'none'], [255, 'over'], [5, 'mid2']];
  for (const [priority, body] of sent) ch.sendToQueue(queue, Buffer.from(body), priority === undefined ? {} : { priority });
  await ch.waitForConfirms();
  const order = [];
  for (let m = await ch.get(queue, { noAck: true }); m; m = await ch.get(queue, { noAck: true })) order.push(m.content.toString());
  // Higher first; priorities above x-max-priority count as the maximum; FIFO within a
  // priority; no priority counts as 0.
  assert.deepEqual(order, ['high', 'over', 'mid', 'mid2', 'low', 'none']);
});

test('channel-close-callbacks', opts, async (t) => {
  const conn = await withConnection(t);
  const ch = await channel(conn);
  const closed = once(ch, 'close');
  await ch.close();
  await closed;
  await assert.rejects(ch.assertQueue(''), /Channel closed/);
  // A server-closed channel emits 'error' then 'close'; the connection survives.
  const bad = await conn.createChannel();
  const events = [];
  bad.on('error', (e) => events.push(['error', e.code]));
  const badClosed = once(bad, 'close').then(() => events.push(['close']));
  await assert.rejects(bad.checkExchange(uniq('nope')), (err) => err.code === 404);
  await badClosed;
  assert.deepEqual(events, [['error', 404], ['close']]);
  const fine = await channel(conn);
  assert.match((await fine.assertQueue('', { exclusive: true })).queue, /^amq\.gen-/);
});

test('connection-close-callbacks', opts, async (t) => {
  const conn = await withConnection(t);
  const errors = [];
  conn.on('error', (e) => errors.push(e));
  const closed = once(conn, 'close');
  const ch = await conn.createChannel();
  const chClosed = once(ch, 'close');
  await conn.close();
  // A client-initiated close: 'close' without an error, and its channels close too.
  assert.equal(await closed, undefined);
  await chClosed;
  assert.deepEqual(errors, []);
  await assert.rejects(conn.createChannel(), /Connection closed|closed/i);
});

test('unknown-delivery-tag-406', opts, async (t) => {
  // Acking an unknown delivery tag is a channel error (406 PRECONDITION_FAILED,
  // "unknown delivery tag 42"): the channel closes, the connection stays.
  const conn = await withConnection(t);
  const ch = await conn.createChannel();
  const err = once(ch, 'error');
  ch.ack({ fields: { deliveryTag: 42 } });
  const e = await err;
  assert.equal(e.code, 406);
  assert.match(e.message, /PRECONDITION_FAILED - unknown delivery tag 42/);
  const fine = await channel(conn);
  assert.match((await fine.assertQueue('', { exclusive: true })).queue, /^amq\.gen-/);
});

test('properties-and-headers-round-trip', opts, async (t) => {
  const conn = await withConnection(t);
  const ch = await channel(conn);
  const { queue } = await ch.assertQueue('', { exclusive: true });
  const props = {
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    correlationId: 'corr-42',
    replyTo: 'reply.queue',
    messageId: 'msg-7',
    timestamp: 1700000000,
    type: 'order.created',
    appId: 'interop-amqplib',
    userId: new globalThis.URL(URL).username ? decodeURIComponent(new globalThis.URL(URL).username) : 'guest',
    expiration: '60000',
    priority: 3,
    persistent: false,
    headers: {
      str: 'text',
      int: 42,
      neg: -7,
      big: 1099511627776,
      float: 1.5,
      bool: true,
      'bool-false': false,
      nested: { inner: 'value', n: 1 },
      list: ['a', 2, true],
      buf: Buffer.from([0, 1, 2, 255]),
      empty: '',
    },
  };
  const body = Buffer.from(JSON.stringify({ hello: 'world' }));
  ch.sendToQueue(queue, body, props);
  const m = await getEventually(ch, queue);
  assert.deepEqual(m.content, body);
  const p = m.properties;
  for (const k of ['contentType', 'contentEncoding', 'correlationId', 'replyTo', 'messageId', 'timestamp', 'type', 'appId', 'userId', 'expiration', 'priority']) {
    assert.deepEqual(p[k], props[k], k);
  }
  assert.equal(p.deliveryMode, 1);
  assert.deepEqual(p.headers, props.headers);
});
