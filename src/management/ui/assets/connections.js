// Connections and channels: server-paged lists with their byte and message rates, a page for
// each with a live chart (kept by the page: the API has no per-connection history), the
// client's properties, and closing a connection with a reason the client is told.

import {
  ApiError, api, attempt, can, enc, facts, fill, fmt, go, h, link, onRefresh, page, pages, panel, state,
} from './core.js';
import { History, lineChart } from './chart.js';
import { listTable, staticTable } from './table.js';

/** Bytes per second, as the lists and charts show socket traffic (whole bytes below 1 KiB). */
function byteRate(value) {
  if (value === undefined || value === null) return '–';
  return `${fmt.bytes(Math.abs(value) < 1024 ? Math.round(value) : value)}/s`;
}

/** A time since the epoch (ms) as a local date and time. */
function when(ms) {
  if (!ms) return '–';
  const date = new Date(ms);
  return `${date.toLocaleDateString('en-CA')} ${fmt.clock(ms)}`;
}

/** "Pika Python Client Library 1.3.2" from a connection's client properties. */
function clientName(connection) {
  const props = connection.client_properties || {};
  return [props.product, props.version].filter(Boolean).join(' ') || '–';
}

/** The name the client gave the connection (if any), with its address beneath. */
function connectionCell(connection) {
  const given = connection.user_provided_name;
  return [link(pages.connection(connection.name), given || connection.name),
    given ? h('small', { class: 'muted block address' }, connection.name) : null];
}

const CONNECTION_COLUMNS = [
  { key: 'name', label: 'Name', render: connectionCell },
  { key: 'user', label: 'User' },
  { key: 'vhost', label: 'Virtual host' },
  { key: 'state', label: 'State' },
  { key: 'channels', label: 'Channels', numeric: true },
  { key: 'protocol', label: 'Protocol' },
  { key: 'client_properties.product', label: 'Client', render: clientName },
  { key: 'ssl', label: 'TLS', render: (c) => fmt.yes(c.ssl) },
  { key: 'recv_oct_details.rate', label: 'Received', numeric: true, render: (c) => byteRate(c.recv_oct_details?.rate) },
  { key: 'send_oct_details.rate', label: 'Sent', numeric: true, render: (c) => byteRate(c.send_oct_details?.rate) },
  { key: 'connected_at', label: 'Connected at', render: (c) => when(c.connected_at) },
];

export async function connectionsPage(main) {
  const list = listTable({
    path: '/api/connections',
    vhostPath: (vhost) => `/api/vhosts/${enc(vhost)}/connections`,
    columns: CONNECTION_COLUMNS,
    rowKey: (c) => c.name,
    label: 'connections',
    defaultSort: 'connected_at',
  });
  fill(main, page('Connections', scopeNote(), list.element));
  await list.refresh();
  onRefresh(list.refresh);
}

/** Says which vhost a list is limited to (the header's selector). */
function scopeNote() {
  return state.vhost ? h('p', { class: 'muted' }, `In virtual host ${state.vhost} (change it in the header).`) : null;
}

/** A rate from a channel's `message_stats`, e.g. `publish`. */
const messageRate = (channel, key) => channel.message_stats?.[`${key}_details`]?.rate;

/** "confirm", "transactional" or nothing, as badges. */
function channelMode(channel) {
  const modes = [];
  if (channel.confirm) modes.push(h('span', { class: 'badge', title: 'Publisher confirms' }, 'confirm'));
  if (channel.transactional) modes.push(h('span', { class: 'badge', title: 'Transactional' }, 'tx'));
  return modes.length ? modes : '–';
}

function prefetch(channel) {
  const parts = [];
  if (channel.prefetch_count) parts.push(fmt.num(channel.prefetch_count));
  if (channel.global_prefetch_count) parts.push(`${fmt.num(channel.global_prefetch_count)} (global)`);
  return parts.length ? parts.join(', ') : '–';
}

const CHANNEL_COLUMNS = [
  { key: 'name', label: 'Channel', render: (c) => link(pages.channel(c.name), c.name) },
  { key: 'connection_details.name', label: 'Connection', render: (c) => link(pages.connection(c.connection_details.name), c.connection_details.name) },
  { key: 'user', label: 'User' },
  { key: 'confirm', label: 'Mode', render: channelMode },
  { key: 'prefetch_count', label: 'Prefetch', numeric: true, render: prefetch },
  { key: 'messages_unacknowledged', label: 'Unacked', numeric: true },
  { key: 'messages_unconfirmed', label: 'Unconfirmed', numeric: true },
  { key: 'consumer_count', label: 'Consumers', numeric: true },
  { key: 'message_stats.publish_details.rate', label: 'Publish', numeric: true, render: (c) => fmt.rate(messageRate(c, 'publish') ?? 0) },
  { key: 'message_stats.deliver_get_details.rate', label: 'Deliver / get', numeric: true, render: (c) => fmt.rate(messageRate(c, 'deliver_get') ?? 0) },
  { key: 'message_stats.ack_details.rate', label: 'Ack', numeric: true, render: (c) => fmt.rate(messageRate(c, 'ack') ?? 0) },
];

export async function channelsPage(main) {
  const list = listTable({
    path: '/api/channels',
    vhostPath: (vhost) => `/api/vhosts/${enc(vhost)}/channels`,
    columns: CHANNEL_COLUMNS,
    rowKey: (c) => c.name,
    label: 'channels',
    defaultSort: 'name',
  });
  fill(main, page('Channels', scopeNote(), list.element));
  await list.refresh();
  onRefresh(list.refresh);
}

/**
 * Client properties as nested key/value lists: `capabilities` is a table of its own, shown
 * as one rather than as JSON.
 */
function propertiesList(object) {
  const entries = Object.entries(object || {});
  if (!entries.length) return h('p', { class: 'muted' }, 'None.');
  return h('ul', { class: 'kv' }, entries.map(([key, value]) => h('li', { dataset: { property: key } },
    h('code', {}, key), ': ',
    value && typeof value === 'object' && !Array.isArray(value) ? propertiesList(value) : String(value))));
}

/** What a connection's or channel's chart covers: the page starts it empty, so keep it short. */
const HISTORY_MS = 5 * 60 * 1000;

/** A chart of what the page has seen of a rate, one point per refresh. */
function historyChart(title, series, format) {
  const chart = lineChart({ title, series, format, windowMs: HISTORY_MS });
  const history = new History(HISTORY_MS);
  return { element: chart.element, add: (values) => chart.update(history.add(values)) };
}

/** A line saying an object is gone, instead of a page that silently stops changing. */
function goneNotice(what, listHash, listLabel) {
  return h('p', { class: 'error', role: 'alert' }, `This ${what} is closed. `, link(listHash, `Back to ${listLabel}`));
}

export async function connectionPage(main, [name]) {
  const path = `/api/connections/${enc(name)}`;
  const connection = await api('GET', path);
  const summary = h('div', { id: 'connection-facts' });
  const properties = h('div', { id: 'client-properties' });
  const channels = h('div', { id: 'connection-channels' });
  const status = h('div');
  const chart = historyChart('Data rates', [{ key: 'recv', label: 'Received' }, { key: 'send', label: 'Sent' }], byteRate);
  const mayClose = can.administer() || connection.user === state.user.name;
  fill(main, page(connection.user_provided_name ? `Connection ${connection.user_provided_name}` : 'Connection',
    h('p', { class: 'muted' }, connection.name),
    status,
    h('div', { class: 'charts narrow' }, chart.element),
    h('div', { class: 'row' }, panel('Details', summary), panel('Client properties', properties)),
    panel('Channels', channels),
    mayClose ? panel('Close this connection', closeForm(connection)) : null));

  let closed = false;
  async function refresh() {
    if (closed) return;
    let current;
    let channelList;
    try {
      [current, channelList] = await Promise.all([api('GET', path), api('GET', `${path}/channels`)]);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        closed = true;
        fill(status, goneNotice('connection', '#/connections', 'connections'));
        return;
      }
      throw error;
    }
    chart.add({ recv: current.recv_oct_details?.rate ?? 0, send: current.send_oct_details?.rate ?? 0 });
    fill(summary, connectionFacts(current));
    fill(properties, propertiesList(current.client_properties));
    fill(channels, staticTable(CHANNEL_COLUMNS.filter((c) => c.key !== 'connection_details.name'), channelList,
      { empty: 'No channels open.', rowKey: (c) => c.name }));
  }
  await refresh();
  onRefresh(refresh);
}

function connectionFacts(c) {
  return facts([
    ['User', c.user],
    ['Virtual host', c.vhost],
    ['State', c.state],
    ['Peer', `${c.peer_host}:${c.peer_port}`],
    ['Local', `${c.host}:${c.port}`],
    ['Protocol', c.protocol],
    ['TLS', c.ssl ? [c.ssl_protocol, c.ssl_cipher].filter(Boolean).join(', ') || 'yes' : 'no'],
    ['Authentication', c.auth_mechanism],
    ['Client', clientName(c)],
    ['Channels', `${fmt.num(c.channels)} (at most ${fmt.num(c.channel_max)})`],
    ['Frame max', `${fmt.num(c.frame_max)} bytes`],
    ['Heartbeat', c.timeout ? `${c.timeout} s` : 'off'],
    ['Connected at', when(c.connected_at)],
    ['Received', `${fmt.bytes(c.recv_oct)} (${byteRate(c.recv_oct_details?.rate)})`],
    ['Sent', `${fmt.bytes(c.send_oct)} (${byteRate(c.send_oct_details?.rate)})`],
  ]);
}

/**
 * The reason goes to the client in connection.close (320 CONNECTION_FORCED); the API takes it
 * from the X-Reason header. A header carries Latin-1 only, so other characters become '?'.
 */
function closeForm(connection) {
  const reason = h('input', {
    id: 'close-connection-reason', name: 'reason', value: 'Closed via the web UI', maxlength: 200,
  });
  const button = h('button', { type: 'submit', class: 'danger' }, 'Close connection');
  const element = h('form', { id: 'close-connection', class: 'form' },
    h('div', { class: 'field' }, h('label', { for: reason.id }, 'Reason'), reason,
      h('small', { class: 'muted' }, 'Sent to the client with the close.')),
    h('div', { class: 'actions' }, button));
  element.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!window.confirm(`Close connection ${connection.user_provided_name || connection.name}?`)) return;
    button.disabled = true;
    const text = reason.value.replace(/[^\x20-\x7e\xa0-\xff]/g, '?') || 'Closed via management plugin';
    const ok = await attempt(() => api('DELETE', `/api/connections/${enc(connection.name)}`, undefined,
      { headers: { 'X-Reason': text } }), 'Connection closed.');
    button.disabled = false;
    if (ok) go('#/connections');
  });
  return element;
}

export async function channelPage(main, [name]) {
  const path = `/api/channels/${enc(name)}`;
  const channel = await api('GET', path);
  const summary = h('div', { id: 'channel-facts' });
  const consumers = h('div', { id: 'channel-consumers' });
  const status = h('div');
  const chart = historyChart('Message rates', [
    { key: 'publish', label: 'Published' },
    { key: 'confirm', label: 'Confirmed' },
    { key: 'deliver_get', label: 'Delivered' },
    { key: 'ack', label: 'Acknowledged' },
  ], fmt.rate);
  fill(main, page(`Channel ${channel.number}`,
    h('p', {}, 'On connection ', link(pages.connection(channel.connection_details.name), channel.connection_details.name)),
    status,
    h('div', { class: 'charts narrow' }, chart.element),
    panel('Details', summary),
    panel('Consumers', consumers)));

  let closed = false;
  async function refresh() {
    if (closed) return;
    let current;
    try {
      current = await api('GET', path);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        closed = true;
        fill(status, goneNotice('channel', '#/channels', 'channels'));
        return;
      }
      throw error;
    }
    chart.add(Object.fromEntries(['publish', 'confirm', 'deliver_get', 'ack'].map((k) => [k, messageRate(current, k) ?? 0])));
    fill(summary, channelFacts(current));
    fill(consumers, staticTable([
      { key: 'consumer_tag', label: 'Consumer tag' },
      { key: 'queue.name', label: 'Queue', render: (c) => link(pages.queue(c.queue.vhost, c.queue.name), c.queue.name) },
      { key: 'ack_required', label: 'Ack required', render: (c) => fmt.yes(c.ack_required) },
      { key: 'exclusive', label: 'Exclusive', render: (c) => fmt.yes(c.exclusive) },
      { key: 'prefetch_count', label: 'Prefetch', numeric: true },
      { key: 'activity_status', label: 'Activity' },
    ], current.consumer_details, { empty: 'No consumers on this channel.', rowKey: (c) => c.consumer_tag }));
  }
  await refresh();
  onRefresh(refresh);
}

function channelFacts(c) {
  const stats = c.message_stats || {};
  return facts([
    ['User', c.user],
    ['Virtual host', c.vhost],
    ['State', c.state],
    ['Mode', channelMode(c)],
    ['Prefetch', prefetch(c)],
    ['Unacknowledged', fmt.num(c.messages_unacknowledged)],
    ['Unconfirmed', fmt.num(c.messages_unconfirmed)],
    ['Consumers', fmt.num(c.consumer_count)],
    ['Published', `${fmt.num(stats.publish ?? 0)} (${fmt.rate(messageRate(c, 'publish') ?? 0)})`],
    ['Delivered', `${fmt.num(stats.deliver_get ?? 0)} (${fmt.rate(messageRate(c, 'deliver_get') ?? 0)})`],
    ['Acknowledged', `${fmt.num(stats.ack ?? 0)} (${fmt.rate(messageRate(c, 'ack') ?? 0)})`],
  ]);
}
