// Queues: the list (paged, sorted and filtered by the API, so 10,000 queues cost one page of
// rows) with a declare form, and a page per queue: its charts, figures, consumers, bindings,
// and forms to publish, get, purge and delete.
//
// The API keeps no history per queue, so the page charts what it sees on each refresh
// (History): the lines start when the page is opened.

import {
  ApiError, api, describeTable, enc, facts, fill, fmt, go, h, link, onRefresh, page, pages,
  panel, refreshNow, state, toast,
} from './core.js';
import { History, lineChart } from './chart.js';
import { dangerButton, form, vhostField } from './forms.js';
import { listTable, staticTable } from './table.js';
import {
  QUEUE_ARGUMENT_HINTS, addBindingForm, bindingsTable, deleteOption, featureBadges, mayChange,
  publishForm, redrawIfChanged,
} from './amqp.js';

/** The queue types Hare declares (`x-queue-type`); streams are refused. */
const QUEUE_TYPES = [['classic', 'Classic'], ['quorum', 'Quorum']];

/** The fields a list row shows: the API sends only these (`columns=`). */
const LIST_FIELDS = [
  'name', 'vhost', 'type', 'state', 'durable', 'auto_delete', 'exclusive', 'arguments', 'policy',
  'operator_policy', 'messages_ready', 'messages_unacknowledged', 'messages', 'consumers',
  'message_stats.publish_details.rate', 'message_stats.deliver_get_details.rate',
  'message_stats.ack_details.rate',
];

const rate = (key) => ({
  key: `message_stats.${key}_details.rate`,
  numeric: true,
  render: (q) => fmt.rate(q.message_stats?.[`${key}_details`]?.rate ?? 0),
});

export async function queuesPage(main) {
  const columns = [
    { key: 'name', label: 'Name', render: (q) => link(pages.queue(q.vhost, q.name), q.name) },
    state.vhost ? null : { key: 'vhost', label: 'Virtual host' },
    { key: 'type', label: 'Type' },
    { key: 'features', label: 'Features', sort: false, render: featureBadges },
    { key: 'state', label: 'State' },
    { key: 'messages_ready', label: 'Ready', numeric: true },
    { key: 'messages_unacknowledged', label: 'Unacked', numeric: true },
    { key: 'messages', label: 'Total', numeric: true },
    { key: 'consumers', label: 'Consumers', numeric: true },
    { ...rate('publish'), label: 'Incoming' },
    { ...rate('deliver_get'), label: 'Deliver / get' },
    { ...rate('ack'), label: 'Ack' },
  ].filter(Boolean);
  const list = listTable({
    path: '/api/queues',
    columns,
    rowKey: (q) => `${q.vhost}/${q.name}`,
    label: 'queues',
    defaultSort: 'name',
    pageSize: 50,
    fields: LIST_FIELDS,
  });
  const declare = mayChange() ? panel('Add a queue', await declareQueueForm(list.refresh)) : null;
  fill(main, page('Queues', list.element, declare));
  await list.refresh();
  onRefresh(list.refresh);
}

async function declareQueueForm(onDeclared) {
  return form({
    id: 'declare-queue',
    fields: [
      await vhostField(state.vhost),
      { name: 'name', label: 'Name', required: true },
      { name: 'type', label: 'Type', type: 'select', options: QUEUE_TYPES, value: 'classic', help: 'Quorum queues are always durable.' },
      { name: 'durable', label: 'Durability', type: 'select', options: [['true', 'Durable'], ['false', 'Transient']], value: 'true' },
      { name: 'auto_delete', label: 'Auto delete', type: 'checkbox', help: 'Deleted when its last consumer goes.' },
      { name: 'arguments', label: 'Arguments', type: 'args', hints: QUEUE_ARGUMENT_HINTS },
    ],
    submit: 'Add queue',
    onSubmit: async (values) => {
      await api('PUT', `/api/queues/${enc(values.vhost)}/${enc(values.name)}`, {
        durable: values.durable === 'true',
        auto_delete: values.auto_delete,
        arguments: { 'x-queue-type': values.type, ...values.arguments },
      });
      toast(`Queue "${values.name}" declared.`);
      await onDeclared();
    },
  });
}

/** The series of the queue page's charts, by the field they come from. */
const LENGTH_SERIES = [
  { key: 'messages_ready', label: 'Ready' },
  { key: 'messages_unacknowledged', label: 'Unacked' },
  { key: 'messages', label: 'Total' },
];
const RATE_SERIES = [
  { key: 'publish', label: 'Published' },
  { key: 'deliver_get', label: 'Delivered / got' },
  { key: 'ack', label: 'Acknowledged' },
  { key: 'redeliver', label: 'Redelivered' },
];

export async function queuePage(main, [vhost, name]) {
  const path = `/api/queues/${enc(vhost)}/${enc(name)}`;
  let queue;
  try {
    queue = await api('GET', path);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) throw error;
    fill(main, page('Queue not found', h('p', { class: 'error', role: 'alert' },
      `Queue "${name}" not found in virtual host "${vhost}".`), h('p', {}, link('#/queues', 'All queues'))));
    return;
  }

  const lengths = lineChart({ title: 'Queued messages', series: LENGTH_SERIES, format: fmt.short });
  const rates = lineChart({ title: 'Message rates', series: RATE_SERIES });
  const lengthHistory = new History();
  const rateHistory = new History();
  const counts = h('div', { class: 'totals', id: 'queue-counts' });
  const details = h('div', { id: 'queue-details' });
  const consumers = h('div', { id: 'queue-consumers' });
  const bindings = h('div', { id: 'queue-bindings' });
  const got = h('div', { id: 'got-messages', 'aria-live': 'polite' });
  const changes = mayChange();

  // A tick's request sent before an action (purge, get) may answer after the action's own
  // refresh: only the newest answer is drawn.
  let requests = 0;
  async function refresh() {
    const ticket = ++requests;
    let current;
    try {
      current = await api('GET', path);
      if (ticket !== requests) return;
    } catch (error) {
      if (ticket !== requests) return;
      if (error instanceof ApiError && error.status === 404) {
        fill(counts, h('p', { class: 'error', role: 'alert' }, `Queue "${name}" no longer exists in virtual host "${vhost}".`));
        return;
      }
      throw error;
    }
    draw(current);
    await refreshBindings();
  }

  function draw(current) {
    const stats = current.message_stats || {};
    lengths.update(lengthHistory.add(Object.fromEntries(LENGTH_SERIES.map(({ key }) => [key, current[key] ?? 0]))));
    rates.update(rateHistory.add(Object.fromEntries(RATE_SERIES.map(({ key }) => [key, stats[`${key}_details`]?.rate ?? 0]))));
    redrawIfChanged(counts, [current.messages_ready, current.messages_unacknowledged, current.messages, current.consumers],
      () => countCards(current));
    redrawIfChanged(details, detailsOf(current), () => queueFacts(current));
    redrawIfChanged(consumers, current.consumer_details, () => consumersTable(current.consumer_details));
  }

  async function refreshBindings() {
    const items = await api('GET', `${path}/bindings`);
    redrawIfChanged(bindings, items, () => bindingsTable(items, { ends: ['source'], onChange: refreshBindings }));
  }

  // Side by side on a wide screen: the page stays short enough to see a publish and its get.
  const actions = changes ? [
    h('div', { class: 'row' },
      panel('Publish message',
        h('p', { class: 'muted' }, 'Sent through the default exchange with the queue\'s name as routing key.'),
        publishForm({ vhost, exchange: '', routingKey: name, onPublished: refreshNow })),
      panel('Get messages',
        h('p', { class: 'muted' }, 'Getting messages is destructive unless they are put back (requeued).'),
        getForm(path, got, refreshNow), got)),
    panel('Purge and delete', dangerZone(vhost, name, path)),
  ] : [];

  fill(main, page(`Queue ${name}`,
    h('p', { class: 'muted' }, 'Virtual host ', h('strong', {}, vhost)),
    counts,
    h('div', { class: 'charts' }, lengths.element, rates.element),
    panel('Details', details),
    panel('Consumers', consumers),
    panel('Bindings', bindings, changes ? [h('h3', {}, 'Add binding'), addBindingForm({ vhost, to: name, onAdded: refreshBindings })] : null),
    actions));
  draw(queue);
  await refreshBindings();
  onRefresh(refresh);
}

function countCards(queue) {
  const card = (key, label, value) => h('div', { class: 'card', dataset: { count: key } },
    h('span', { class: 'value' }, fmt.num(value ?? 0)), h('span', { class: 'label' }, label));
  return [
    card('messages_ready', 'Ready', queue.messages_ready),
    card('messages_unacknowledged', 'Unacked', queue.messages_unacknowledged),
    card('messages', 'Total', queue.messages),
    card('consumers', 'Consumers', queue.consumers),
  ];
}

/** What the details panel shows, without the figures that change with every message. */
function detailsOf(queue) {
  const { messages, messages_ready, messages_unacknowledged, message_stats, consumer_details, idle_since,
    messages_details, messages_ready_details, messages_unacknowledged_details, messages_ram,
    messages_ready_ram, messages_unacknowledged_ram, messages_paged_out, message_bytes,
    message_bytes_ready, message_bytes_unacknowledged, memory, ...rest } = queue;
  // Memory moves with each message; rounded to a KiB it rarely redraws the panel.
  return { ...rest, memory: Math.round((memory ?? 0) / 1024), bytes: Math.round((message_bytes ?? 0) / 1024) };
}

function queueFacts(queue) {
  const owner = queue.owner_pid_details;
  return facts([
    ['Virtual host', queue.vhost],
    ['Type', queue.type],
    ['State', queue.state],
    ['Features', featureBadges(queue) || '–'],
    ['Durable', fmt.yes(queue.durable)],
    ['Auto delete', fmt.yes(queue.auto_delete)],
    ['Exclusive', queue.exclusive ? (owner ? ['yes, owned by ', link(pages.connection(owner.name), owner.name)] : 'yes') : 'no'],
    ['Arguments', describeTable(queue.arguments)],
    ['Policy', queue.policy || 'none'],
    ['Operator policy', queue.operator_policy || 'none'],
    ['Effective policy definition', describeTable(queue.effective_policy_definition)],
    ['Consumers', fmt.num(queue.consumers ?? 0)],
    queue.memory !== undefined ? ['Memory', fmt.bytes(queue.memory)] : null,
    queue.message_bytes !== undefined ? ['Message bytes', fmt.bytes(queue.message_bytes)] : null,
    ['Node', queue.node],
  ]);
}

function consumersTable(items) {
  return staticTable([
    { key: 'channel_details.name', label: 'Channel', render: (c) => link(pages.channel(c.channel_details.name), c.channel_details.name) },
    { key: 'consumer_tag', label: 'Consumer tag' },
    { key: 'ack_required', label: 'Ack required' },
    { key: 'exclusive', label: 'Exclusive' },
    { key: 'prefetch_count', label: 'Prefetch', numeric: true },
    { key: 'activity_status', label: 'Activity' },
    { key: 'arguments', label: 'Arguments', render: (c) => describeTable(c.arguments) },
  ], items || [], { empty: 'No consumers.', rowKey: (c) => `${c.channel_details.name}/${c.consumer_tag}` });
}

/** RabbitMQ's wording for the ack modes of a get. */
const ACK_MODES = [
  ['ack_requeue_true', 'Nack message requeue true'],
  ['reject_requeue_true', 'Reject requeue true'],
  ['ack_requeue_false', 'Automatic ack'],
  ['reject_requeue_false', 'Reject requeue false'],
];

function getForm(path, output, onGot) {
  return form({
    id: 'get-messages',
    fields: [
      { name: 'ackmode', label: 'Ack mode', type: 'select', options: ACK_MODES, value: 'ack_requeue_true' },
      { name: 'encoding', label: 'Encoding', type: 'select', options: [['auto', 'Auto string / base64'], ['base64', 'base64']], value: 'auto' },
      { name: 'count', label: 'Messages', type: 'number', value: 1, required: true },
      { name: 'truncate', label: 'Truncate payload to (bytes)', type: 'number', value: 50000 },
    ],
    submit: 'Get messages',
    reset: false,
    onSubmit: async (values) => {
      const body = { count: values.count ?? 1, ackmode: values.ackmode, encoding: values.encoding };
      if (values.truncate !== undefined) body.truncate = values.truncate;
      const messages = await api('POST', `${path}/get`, body);
      fill(output, messages.length ? messages.map(messageBlock) : h('p', { class: 'muted empty' }, 'Queue is empty'));
      await onGot();
    },
  });
}

function messageBlock(message, index) {
  const truncated = message.payload_encoding === 'string' ? new TextEncoder().encode(message.payload).length < message.payload_bytes : false;
  return h('article', { class: 'message', dataset: { message: index + 1 } },
    h('h3', {}, `Message ${index + 1}`),
    facts([
      ['Exchange', message.exchange === '' ? '(AMQP default)' : message.exchange],
      ['Routing key', message.routing_key],
      ['Redelivered', fmt.yes(message.redelivered)],
      ['Queued behind it', fmt.num(message.message_count)],
      ['Properties', describeTable(message.properties)],
      ['Payload', `${fmt.num(message.payload_bytes)} bytes, encoding: ${message.payload_encoding}${truncated ? ' (truncated)' : ''}`],
    ]),
    h('pre', { class: 'payload' }, message.payload));
}

function dangerZone(vhost, name, path) {
  const ifEmpty = deleteOption('if-empty', 'Only if empty');
  const ifUnused = deleteOption('if-unused', 'Only if it has no consumers');
  const purge = dangerButton('Purge messages', `Purge every ready message of queue "${name}"?`,
    () => api('DELETE', `${path}/contents`), { success: `Queue "${name}" purged.`, then: refreshNow });
  const remove = dangerButton('Delete queue', `Delete queue "${name}" in virtual host "${vhost}"?`,
    () => {
      const query = new URLSearchParams();
      if (ifEmpty.input.checked) query.set('if-empty', 'true');
      if (ifUnused.input.checked) query.set('if-unused', 'true');
      return api('DELETE', query.size ? `${path}?${query}` : path);
    },
    { success: `Queue "${name}" deleted.`, then: () => go('#/queues') });
  return h('div', { class: 'danger-zone' },
    h('div', { class: 'actions' }, purge),
    h('div', { class: 'actions' }, remove, ifEmpty.element, ifUnused.element));
}
