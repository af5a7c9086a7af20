// The overview: live charts of message rates and queued messages (from the API's hour of
// node-wide samples, so they are full on the first view), object totals, the node's memory,
// disk, file descriptors and alarms, and the listeners.

import { api, facts, fill, fmt, h, onRefresh, page, panel, state } from './core.js';
import { joinSeries, levelsFromSamples, lineChart, ratesFromSamples } from './chart.js';
import { staticTable } from './table.js';

/** The rates charted, by their `message_stats` names. */
const RATE_SERIES = [
  { key: 'publish', label: 'Published' },
  { key: 'confirm', label: 'Confirmed' },
  { key: 'deliver_get', label: 'Delivered' },
  { key: 'ack', label: 'Acknowledged' },
  { key: 'redeliver', label: 'Redelivered' },
  { key: 'return_unroutable', label: 'Returned' },
  { key: 'drop_unroutable', label: 'Dropped' },
  { key: 'dead_lettered', label: 'Dead-lettered' },
];

const LENGTH_SERIES = [
  { key: 'messages_ready', label: 'Ready' },
  { key: 'messages_unacknowledged', label: 'Unacknowledged' },
  { key: 'messages', label: 'Total' },
];

const WINDOW_S = 600;

export async function overviewPage(main) {
  const rates = lineChart({ title: 'Message rates', series: RATE_SERIES, windowMs: WINDOW_S * 1000 });
  const lengths = lineChart({ title: 'Queued messages', series: LENGTH_SERIES, format: fmt.short, windowMs: WINDOW_S * 1000 });
  const totals = h('div', { class: 'totals', id: 'object-totals' });
  const node = h('div', { id: 'node-facts' });
  const listeners = h('div', { id: 'listeners' });
  const about = h('p', { class: 'muted', id: 'about' });
  fill(main, page('Overview',
    about,
    h('div', { class: 'charts' }, lengths.element, rates.element),
    panel('Totals', totals),
    panel('Node', node),
    panel('Listeners', listeners)));

  async function refresh() {
    const query = `lengths_age=${WINDOW_S}&lengths_incr=5&msg_rates_age=${WINDOW_S}&msg_rates_incr=5`;
    const [overview, nodes] = await Promise.all([
      api('GET', `/api/overview?${query}`),
      api('GET', '/api/nodes').catch(() => []),
    ]);
    const stats = overview.message_stats || {};
    rates.update(joinSeries(Object.fromEntries(RATE_SERIES.map(({ key }) =>
      [key, ratesFromSamples(stats[`${key}_details`]?.samples)]))));
    const queued = overview.queue_totals || {};
    lengths.update(joinSeries(Object.fromEntries(LENGTH_SERIES.map(({ key }) =>
      [key, levelsFromSamples(queued[`${key}_details`]?.samples)]))));
    about.textContent = `Node ${overview.node} · management API of RabbitMQ ${overview.rabbitmq_version}`
      + (state.vhost ? ' · totals cover every vhost you see; lists follow the vhost selector' : '');
    fill(totals, totalCards(overview));
    fill(node, nodeFacts(nodes[0]));
    fill(listeners, staticTable([
      { key: 'protocol', label: 'Protocol' },
      { key: 'ip_address', label: 'Address' },
      { key: 'port', label: 'Port', numeric: true },
      { key: 'tls', label: 'TLS', render: (l) => fmt.yes(l.tls) },
    ], overview.listeners || [], { empty: 'No listeners.' }));
  }
  await refresh();
  onRefresh(refresh);
}

function totalCards(overview) {
  const objects = overview.object_totals || {};
  const queued = overview.queue_totals || {};
  const card = (label, value, hash) => h('a', { class: 'card', href: hash, dataset: { total: label.toLowerCase() } },
    h('span', { class: 'value' }, fmt.num(value ?? 0)), h('span', { class: 'label' }, label));
  return [
    card('Connections', objects.connections, '#/connections'),
    card('Channels', objects.channels, '#/channels'),
    card('Exchanges', objects.exchanges, '#/exchanges'),
    card('Queues', objects.queues, '#/queues'),
    card('Consumers', objects.consumers, '#/queues'),
    card('Ready', queued.messages_ready, '#/queues'),
    card('Unacked', queued.messages_unacknowledged, '#/queues'),
  ];
}

function nodeFacts(node) {
  if (!node) return h('p', { class: 'muted' }, 'Node details need the monitoring or administrator tag.');
  const alarms = [];
  if (node.mem_alarm) alarms.push('memory');
  if (node.disk_free_alarm) alarms.push('disk');
  const meter = (used, total) => h('span', {}, h('meter', { min: 0, max: total || 1, value: used || 0 }), ' ');
  return facts([
    ['Name', node.name],
    ['Uptime', fmt.duration((node.uptime || 0) / 1000)],
    ['Memory', [meter(node.mem_used, node.mem_limit), `${fmt.bytes(node.mem_used)} of ${fmt.bytes(node.mem_limit)} high watermark`]],
    ['Disk free', `${fmt.bytes(node.disk_free)} (limit ${fmt.bytes(node.disk_free_limit)})`],
    ['File descriptors', [meter(node.fd_used, node.fd_total), `${fmt.num(node.fd_used)} of ${fmt.num(node.fd_total)}`]],
    ['Sockets', `${fmt.num(node.sockets_used)} of ${fmt.num(node.sockets_total)}`],
    ['Threads', `${fmt.num(node.proc_used)} (${node.processors} processors)`],
    ['Alarms', alarms.length ? h('strong', { class: 'alarm' }, alarms.join(', ')) : 'none'],
  ]);
}
