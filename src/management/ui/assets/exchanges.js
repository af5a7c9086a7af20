// Exchanges: the list (paged by the API) with a declare form, and a page per exchange: its
// rate chart, settings, bindings both ways, a binding form, a publish form and deletion.
// The default exchange is "" in the API's JSON and `amq.default` in its paths and ours.

import {
  ApiError, api, describeTable, enc, facts, fill, fmt, go, h, link, onRefresh, page, panel,
  state, toast,
} from './core.js';
import { History, lineChart } from './chart.js';
import { dangerButton, form, vhostField } from './forms.js';
import { listTable } from './table.js';
import {
  addBindingForm, bindingsTable, deleteOption, exchangeLabel, exchangeLink, featureBadges,
  mayChange, publishForm, redrawIfChanged,
} from './amqp.js';

const LIST_FIELDS = [
  'name', 'vhost', 'type', 'durable', 'auto_delete', 'internal', 'arguments',
  'message_stats.publish_in_details.rate', 'message_stats.publish_out_details.rate',
];

/** Used when /api/overview cannot be read; the same as Hare's `exchange_types`. */
const KNOWN_TYPES = ['direct', 'fanout', 'topic', 'headers', 'x-consistent-hash', 'x-delayed-message'];

const EXCHANGE_ARGUMENT_HINTS = [
  { key: 'alternate-exchange', label: 'Alternate exchange', type: 'string' },
  { key: 'x-delayed-type', label: 'Delayed message type', type: 'string' },
];

const rate = (key, label) => ({
  key: `message_stats.${key}_details.rate`,
  label,
  numeric: true,
  render: (x) => fmt.rate(x.message_stats?.[`${key}_details`]?.rate ?? 0),
});

export async function exchangesPage(main) {
  const columns = [
    { key: 'name', label: 'Name', render: (x) => exchangeLink(x.vhost, x.name) },
    state.vhost ? null : { key: 'vhost', label: 'Virtual host' },
    { key: 'type', label: 'Type' },
    { key: 'features', label: 'Features', sort: false, render: featureBadges },
    rate('publish_in', 'Message rate in'),
    rate('publish_out', 'Message rate out'),
  ].filter(Boolean);
  const list = listTable({
    path: '/api/exchanges',
    columns,
    rowKey: (x) => `${x.vhost}/${x.name}`,
    label: 'exchanges',
    defaultSort: 'name',
    fields: LIST_FIELDS,
  });
  const declare = mayChange() ? panel('Add an exchange', await declareExchangeForm(list.refresh)) : null;
  fill(main, page('Exchanges', list.element, declare));
  await list.refresh();
  onRefresh(list.refresh);
}

async function exchangeTypes() {
  try {
    const overview = await api('GET', '/api/overview?columns=exchange_types');
    const names = (overview.exchange_types || []).filter((t) => t.enabled !== false).map((t) => t.name);
    return names.length ? names : KNOWN_TYPES;
  } catch {
    return KNOWN_TYPES;
  }
}

async function declareExchangeForm(onDeclared) {
  const [vhost, types] = await Promise.all([vhostField(state.vhost), exchangeTypes()]);
  return form({
    id: 'declare-exchange',
    fields: [
      vhost,
      { name: 'name', label: 'Name', required: true },
      { name: 'type', label: 'Type', type: 'select', options: types.map((t) => [t, t]), value: 'direct' },
      { name: 'durable', label: 'Durability', type: 'select', options: [['true', 'Durable'], ['false', 'Transient']], value: 'true' },
      { name: 'auto_delete', label: 'Auto delete', type: 'checkbox', help: 'Deleted when its last binding goes.' },
      { name: 'internal', label: 'Internal', type: 'checkbox', help: 'Publishers cannot use it; only other exchanges route to it.' },
      { name: 'arguments', label: 'Arguments', type: 'args', placeholder: 'alternate-exchange', hints: EXCHANGE_ARGUMENT_HINTS },
    ],
    submit: 'Add exchange',
    onSubmit: async (values) => {
      await api('PUT', `/api/exchanges/${enc(values.vhost)}/${enc(values.name)}`, {
        type: values.type,
        durable: values.durable === 'true',
        auto_delete: values.auto_delete,
        internal: values.internal,
        arguments: values.arguments,
      });
      toast(`Exchange "${values.name}" declared.`);
      await onDeclared();
    },
  });
}

const RATE_SERIES = [
  { key: 'publish_in', label: 'Published in' },
  { key: 'publish_out', label: 'Published out' },
];

/** The default exchange and `amq.*` belong to the broker: the API refuses to delete them. */
function builtIn(name) {
  return name === '' || name.startsWith('amq.');
}

export async function exchangePage(main, [vhost, pathName]) {
  const name = pathName === 'amq.default' ? '' : pathName;
  const path = `/api/exchanges/${enc(vhost)}/${enc(pathName)}`;
  let exchange;
  try {
    exchange = await api('GET', path);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) throw error;
    fill(main, page('Exchange not found', h('p', { class: 'error', role: 'alert' },
      `Exchange "${pathName}" not found in virtual host "${vhost}".`), h('p', {}, link('#/exchanges', 'All exchanges'))));
    return;
  }

  const rates = lineChart({ title: 'Message rates', series: RATE_SERIES });
  const history = new History();
  const details = h('div', { id: 'exchange-details' });
  const outgoing = h('div', { id: 'exchange-bindings-source' });
  const incoming = h('div', { id: 'exchange-bindings-destination' });
  const changes = mayChange();

  function draw(current) {
    const stats = current.message_stats || {};
    rates.update(history.add(Object.fromEntries(RATE_SERIES.map(({ key }) => [key, stats[`${key}_details`]?.rate ?? 0]))));
    const { message_stats, ...settings } = current;
    redrawIfChanged(details, settings, () => exchangeFacts(current));
  }

  async function refreshBindings() {
    const [from, to] = await Promise.all([
      api('GET', `${path}/bindings/source`),
      api('GET', `${path}/bindings/destination`),
    ]);
    redrawIfChanged(outgoing, from, () => bindingsTable(from, {
      ends: ['destination'], onChange: refreshBindings, empty: 'This exchange routes to nothing yet.',
    }));
    redrawIfChanged(incoming, to, () => bindingsTable(to, {
      ends: ['source'], onChange: refreshBindings, empty: 'No exchange routes to this one.',
    }));
  }

  let requests = 0;
  async function refresh() {
    const ticket = ++requests;
    try {
      const current = await api('GET', path);
      // Only the newest answer is drawn (a tick may overlap a publish's refresh).
      if (ticket !== requests) return;
      draw(current);
    } catch (error) {
      if (ticket !== requests) return;
      if (error instanceof ApiError && error.status === 404) {
        fill(details, h('p', { class: 'error', role: 'alert' }, `Exchange "${pathName}" no longer exists in virtual host "${vhost}".`));
        return;
      }
      throw error;
    }
    await refreshBindings();
  }

  const mayPublish = changes && !exchange.internal;
  fill(main, page(`Exchange ${exchangeLabel(name)}`,
    h('p', { class: 'muted' }, 'Virtual host ', h('strong', {}, vhost), ` · type ${exchange.type}`),
    h('div', { class: 'charts' }, rates.element),
    panel('Details', details),
    panel('Bindings',
      h('h3', {}, 'From this exchange'), outgoing,
      h('h3', {}, 'To this exchange'), incoming,
      changes && name !== '' ? [h('h3', {}, 'Add binding from this exchange'),
        addBindingForm({ vhost, from: name, onAdded: refreshBindings })] : null),
    mayPublish ? panel('Publish message', publishForm({ vhost, exchange: name, onPublished: refresh })) : null,
    changes && !builtIn(name) ? panel('Delete this exchange', deleteButton(vhost, name, path)) : null));
  draw(exchange);
  await refreshBindings();
  onRefresh(refresh);
}

function exchangeFacts(exchange) {
  return facts([
    ['Virtual host', exchange.vhost],
    ['Type', exchange.type],
    ['Features', featureBadges(exchange) || '–'],
    ['Durable', fmt.yes(exchange.durable)],
    ['Auto delete', fmt.yes(exchange.auto_delete)],
    ['Internal', fmt.yes(exchange.internal)],
    ['Arguments', describeTable(exchange.arguments)],
  ]);
}

function deleteButton(vhost, name, path) {
  const ifUnused = deleteOption('if-unused', 'Only if it has no bindings');
  const remove = dangerButton('Delete exchange', `Delete exchange "${name}" in virtual host "${vhost}"?`,
    () => api('DELETE', ifUnused.input.checked ? `${path}?if-unused=true` : path),
    { success: `Exchange "${name}" deleted.`, then: () => go('#/exchanges') });
  return h('div', { class: 'actions' }, remove, ifUnused.element);
}
