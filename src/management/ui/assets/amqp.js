// What the queue and exchange pages share: who may change things, the feature badges of a
// list row, bindings with their unbind buttons, the add-binding form, the publish form, and
// redrawing a part of a page only when its data changed (so a refresh does not take the
// keyboard focus away from a button the user is on).

import { api, attempt, can, describeTable, enc, fill, h, hasTag, link, pages, toast } from './core.js';
import { form } from './forms.js';
import { staticTable } from './table.js';

/**
 * Whether the user's tags let them declare, bind, publish, get, purge and delete. The API
 * decides in the end (it also needs a permission in the vhost); a monitoring user only looks.
 */
export function mayChange() {
  if (can.administer()) return true;
  if (hasTag('monitoring')) return false;
  return hasTag('management') || hasTag('policymaker');
}

/** The usual queue arguments, for the declare form's quick-add links. */
export const QUEUE_ARGUMENT_HINTS = [
  { key: 'x-message-ttl', label: 'Message TTL', type: 'number' },
  { key: 'x-expires', label: 'Auto expire', type: 'number' },
  { key: 'x-max-length', label: 'Max length', type: 'number' },
  { key: 'x-max-length-bytes', label: 'Max length bytes', type: 'number' },
  { key: 'x-overflow', label: 'Overflow behaviour', type: 'string' },
  { key: 'x-dead-letter-exchange', label: 'Dead letter exchange', type: 'string' },
  { key: 'x-dead-letter-routing-key', label: 'Dead letter routing key', type: 'string' },
  { key: 'x-single-active-consumer', label: 'Single active consumer', type: 'boolean' },
  { key: 'x-max-priority', label: 'Maximum priority', type: 'number' },
  { key: 'x-delivery-limit', label: 'Delivery limit', type: 'number' },
  { key: 'x-queue-mode', label: 'Lazy mode', type: 'string' },
];

/** Arguments shown as badges in lists: key, badge text, what it means. */
const ARGUMENT_BADGES = [
  ['x-message-ttl', 'TTL', 'Message TTL'],
  ['x-expires', 'Exp', 'Auto expire'],
  ['x-max-length', 'Lim', 'Max length'],
  ['x-max-length-bytes', 'Lim B', 'Max length bytes'],
  ['x-overflow', 'Ovfl', 'Overflow behaviour'],
  ['x-dead-letter-exchange', 'DLX', 'Dead letter exchange'],
  ['x-dead-letter-routing-key', 'DLK', 'Dead letter routing key'],
  ['x-single-active-consumer', 'SAC', 'Single active consumer'],
  ['x-max-priority', 'Pri', 'Maximum priority'],
  ['x-delivery-limit', 'DLim', 'Delivery limit'],
  ['x-queue-mode', 'Mode', 'Queue mode'],
  ['alternate-exchange', 'AE', 'Alternate exchange'],
  ['x-delayed-type', 'Delay', 'Delayed message type'],
];

/** A small abbreviation with its meaning as a tooltip and for screen readers. */
export function badge(text, meaning, kind) {
  return h('abbr', { class: kind ? `badge ${kind}` : 'badge', title: meaning }, text);
}

/** Badges for `durable`, `auto_delete`, `exclusive`, `internal` and the known arguments. */
export function featureBadges(item) {
  const badges = [];
  if (item.durable) badges.push(badge('D', 'Durable'));
  if (item.auto_delete) badges.push(badge('AD', 'Auto delete'));
  if (item.exclusive) badges.push(badge('Excl', 'Exclusive'));
  if (item.internal) badges.push(badge('I', 'Internal'));
  const args = item.arguments || {};
  for (const [key, text, meaning] of ARGUMENT_BADGES) {
    if (key in args) badges.push(badge(text, `${meaning}: ${display(args[key])}`));
  }
  if (item.policy) badges.push(badge(item.policy, `Policy: ${item.policy}`, 'policy'));
  if (item.operator_policy) badges.push(badge(item.operator_policy, `Operator policy: ${item.operator_policy}`, 'policy'));
  return badges.length ? h('span', { class: 'badges' }, badges) : '';
}

function display(value) {
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

/** An exchange's name as people read it: the default exchange has none. */
export function exchangeLabel(name) {
  return name === '' ? '(AMQP default)' : name;
}

export function exchangeLink(vhost, name) {
  return link(pages.exchange(vhost, name), exchangeLabel(name));
}

/**
 * Replaces `element`'s content with `render()` only when `data` differs from last time:
 * the refresh ticker then leaves tables alone (and the focus on their buttons) while nothing
 * changes.
 */
export function redrawIfChanged(element, data, render) {
  const key = JSON.stringify(data);
  if (drawnFrom.get(element) === key) return;
  drawnFrom.set(element, key);
  fill(element, render());
}
const drawnFrom = new WeakMap();

/** At most this many bindings are drawn (the default exchange's can be one per queue). */
const MAX_BINDINGS_SHOWN = 200;

/**
 * A table of bindings. `ends`: which columns name the other end ('source' for a queue's
 * bindings, 'destination' and/or 'source' for an exchange's). Unbind buttons for users who
 * may change, except for the default exchange's implicit bindings; `onChange` runs after one.
 */
export function bindingsTable(items, { ends, onChange, empty = 'No bindings.' }) {
  const columns = [];
  if (ends.includes('source')) {
    columns.push({ key: 'source', label: 'From', render: (b) => exchangeLink(b.vhost, b.source) });
  }
  if (ends.includes('destination')) {
    columns.push({
      key: 'destination',
      label: 'To',
      render: (b) => (b.destination_type === 'queue'
        ? link(pages.queue(b.vhost, b.destination), b.destination)
        : exchangeLink(b.vhost, b.destination)),
    });
    columns.push({ key: 'destination_type', label: 'Type' });
  }
  columns.push({ key: 'routing_key', label: 'Routing key', render: (b) => (b.routing_key === '' ? h('span', { class: 'muted' }, '(empty)') : h('code', {}, b.routing_key)) });
  columns.push({ key: 'arguments', label: 'Arguments', render: (b) => describeTable(b.arguments) });
  if (mayChange()) {
    columns.push({
      key: 'properties_key',
      label: h('span', { class: 'visually-hidden' }, 'Actions'),
      render: (b) => (b.source === ''
        ? h('span', { class: 'muted', title: 'Every queue is bound to the default exchange by its name' }, 'implicit')
        : h('button', {
          type: 'button',
          class: 'danger',
          'aria-label': `Unbind ${exchangeLabel(b.source)} from ${b.destination} with routing key "${b.routing_key}"`,
          on: { click: async () => { if (await attempt(() => unbind(b), 'Binding removed.') && onChange) onChange(); } },
        }, 'Unbind')),
    });
  }
  const shown = items.slice(0, MAX_BINDINGS_SHOWN);
  return [
    staticTable(columns, shown, { empty, rowKey: (b) => `${b.source}\u0000${b.destination_type}\u0000${b.destination}\u0000${b.properties_key}` }),
    items.length > shown.length
      ? h('p', { class: 'muted' }, `Showing ${shown.length} of ${items.length} bindings.`)
      : null,
  ];
}

function unbind(binding) {
  const kind = binding.destination_type === 'queue' ? 'q' : 'e';
  return api('DELETE', `/api/bindings/${enc(binding.vhost)}/e/${enc(binding.source)}/${kind}/${enc(binding.destination)}/${enc(binding.properties_key)}`);
}

/**
 * The add-binding form (id `add-binding`). On a queue's page `to` is the queue and the user
 * names the source exchange; on an exchange's page `from` is the exchange and the user names
 * the destination (queue or exchange).
 */
export function addBindingForm({ vhost, to, from, onAdded }) {
  const fields = [];
  if (from === undefined) {
    fields.push({ name: 'source', label: 'From exchange', required: true, help: 'The exchange that routes to this queue.' });
  } else {
    fields.push({ name: 'destination_type', label: 'To', type: 'select', options: [['q', 'Queue'], ['e', 'Exchange']], value: 'q' });
    fields.push({ name: 'destination', label: 'Queue or exchange name', required: true });
  }
  fields.push({ name: 'routing_key', label: 'Routing key' });
  fields.push({ name: 'arguments', label: 'Arguments', type: 'args', placeholder: 'x-match' });
  return form({
    id: 'add-binding',
    fields,
    submit: 'Bind',
    success: 'Binding added.',
    onSubmit: async (values) => {
      const source = from === undefined ? values.source : from;
      const kind = from === undefined ? 'q' : values.destination_type;
      const destination = from === undefined ? to : values.destination;
      if (source === '' || source === 'amq.default') throw new Error('The default exchange binds every queue by its name; it takes no other bindings.');
      await api('POST', `/api/bindings/${enc(vhost)}/e/${enc(source)}/${kind}/${enc(destination)}`,
        { routing_key: values.routing_key, arguments: values.arguments });
      if (onAdded) onAdded();
    },
  });
}

/** Message properties the API takes, and the quick-add links for them. */
const PROPERTY_HINTS = [
  { key: 'content_type', label: 'content_type' },
  { key: 'content_encoding', label: 'content_encoding' },
  { key: 'correlation_id', label: 'correlation_id' },
  { key: 'message_id', label: 'message_id' },
  { key: 'reply_to', label: 'reply_to' },
  { key: 'expiration', label: 'expiration' },
  { key: 'priority', label: 'priority', type: 'number' },
  { key: 'timestamp', label: 'timestamp', type: 'number' },
  { key: 'type', label: 'type' },
  { key: 'user_id', label: 'user_id' },
  { key: 'app_id', label: 'app_id' },
];
const PROPERTY_NAMES = new Set(PROPERTY_HINTS.map((p) => p.key));

/**
 * The publish form (id `publish-message`) for `exchange` in `vhost` (`''` is the default
 * exchange). `routingKey` fixes the key (a queue's page publishes to the queue by its name);
 * otherwise the form asks for it. `onPublished` runs after a publish.
 */
export function publishForm({ vhost, exchange, routingKey, onPublished }) {
  const fields = [];
  if (routingKey === undefined) fields.push({ name: 'routing_key', label: 'Routing key' });
  fields.push(
    { name: 'delivery_mode', label: 'Delivery mode', type: 'select', options: [['1', '1 - Non-persistent'], ['2', '2 - Persistent']], value: '2' },
    { name: 'headers', label: 'Headers', type: 'args', placeholder: 'header name' },
    { name: 'properties', label: 'Properties', type: 'args', placeholder: 'content_type', hints: PROPERTY_HINTS },
    { name: 'payload', label: 'Payload', type: 'textarea', rows: 5 },
    { name: 'payload_encoding', label: 'Payload encoding', type: 'select', options: [['string', 'String (UTF-8)'], ['base64', 'Base64']], value: 'string' },
  );
  return form({
    id: 'publish-message',
    fields,
    submit: 'Publish message',
    // The same message is often sent again: keep what was typed.
    reset: false,
    onSubmit: async (values) => {
      const properties = {};
      for (const [key, value] of Object.entries(values.properties)) {
        if (!PROPERTY_NAMES.has(key)) throw new Error(`Unknown property "${key}": use one of ${[...PROPERTY_NAMES].join(', ')}`);
        properties[key] = value;
      }
      properties.delivery_mode = Number(values.delivery_mode);
      if (Object.keys(values.headers).length) properties.headers = values.headers;
      const answer = await api('POST', `/api/exchanges/${enc(vhost)}/${enc(exchange || 'amq.default')}/publish`, {
        properties,
        routing_key: routingKey === undefined ? values.routing_key : routingKey,
        payload: values.payload,
        payload_encoding: values.payload_encoding,
      });
      if (answer && answer.routed === false) toast('Message published, but not routed.', 'warn');
      else toast('Message published.');
      if (onPublished) onPublished();
    },
  });
}

/** A confirmation checkbox for a delete option (`if-empty`, `if-unused`). */
export function deleteOption(name, text) {
  const input = h('input', { type: 'checkbox', name, id: `delete-${name}` });
  return { input, element: h('label', { class: 'compact', for: `delete-${name}` }, input, ` ${text}`) };
}
