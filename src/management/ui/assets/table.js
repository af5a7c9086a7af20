// Tables. `listTable` pages, sorts and filters on the server (the API's `page`, `page_size`,
// `name`, `use_regex`, `sort`, `sort_reverse` and `columns`), so a list of 10,000 queues
// costs the browser one page of rows. `staticTable` shows a short list the page already has.

import { api, fmt, h, state } from './core.js';

/**
 * Columns: `[{key, label, sort?, numeric?, render?(item) -> node|string}]`. `key` is a dotted
 * field (also what is sorted by unless `sort` names another, `sort: false` for none).
 */
function cell(column, item) {
  if (column.render) return column.render(item);
  const value = dig(item, column.key);
  if (value === undefined || value === null) return '–';
  if (column.numeric && typeof value === 'number') return fmt.num(value);
  if (typeof value === 'boolean') return fmt.yes(value);
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** The value at a dotted path of an object. */
export function dig(item, path) {
  return path.split('.').reduce((value, key) => (value == null ? undefined : value[key]), item);
}

function headerRow(columns, sorted, onSort) {
  return h('tr', {}, columns.map((column) => {
    const sortKey = column.sort === undefined ? column.key : column.sort;
    const label = column.label;
    if (!sortKey || !onSort) return h('th', { scope: 'col', class: column.numeric ? 'num' : null }, label);
    const active = sorted && sorted.key === sortKey;
    const direction = active ? (sorted.reverse ? 'descending' : 'ascending') : 'none';
    return h('th', { scope: 'col', class: column.numeric ? 'num' : null, 'aria-sort': direction },
      h('button', { type: 'button', class: 'sort', on: { click: () => onSort(sortKey) } },
        label, active ? (sorted.reverse ? ' ▼' : ' ▲') : ''));
  }));
}

function bodyRows(columns, items, rowKey) {
  return items.map((item) => h('tr', { dataset: rowKey ? { key: rowKey(item) } : {} },
    columns.map((column) => h('td', { class: column.numeric ? 'num' : null }, cell(column, item)))));
}

/** A table of `items` with no paging (bindings, consumers, permissions). */
export function staticTable(columns, items, { empty = 'None.', rowKey, caption } = {}) {
  if (!items || !items.length) return h('p', { class: 'muted empty' }, empty);
  return h('div', { class: 'table-wrap' }, h('table', {},
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, headerRow(columns, null, null)),
    h('tbody', {}, bodyRows(columns, items, rowKey))));
}

/**
 * A server-paged list of `path` (e.g. '/api/queues'; the selected vhost is appended when
 * `perVhost`, or `vhostPath(vhost)` gives the path when the API spells it differently, as
 * `/api/vhosts/{vhost}/connections`). Returns `{element, refresh()}`; the page registers
 * `refresh` with onRefresh.
 */
export function listTable({ path, perVhost = true, vhostPath, columns, rowKey, label, defaultSort, pageSize = 50, fields }) {
  const query = { page: 1, name: '', regex: false, sort: defaultSort || null, reverse: false, pageSize };
  const filter = h('input', {
    type: 'search', name: 'filter', placeholder: 'Filter by name', 'aria-label': `Filter ${label}`,
  });
  const regex = h('input', { type: 'checkbox', name: 'regex' });
  const size = h('select', { name: 'page_size', 'aria-label': 'Rows per page' },
    [20, 50, 100, 500].map((n) => h('option', { value: n, selected: n === pageSize }, `${n} per page`)));
  const summary = h('span', { class: 'muted count', 'aria-live': 'polite' });
  const pager = h('nav', { class: 'pager', 'aria-label': `${label} pages` });
  const table = h('table', { class: 'list', dataset: { list: label } });
  const error = h('p', { class: 'error', hidden: true });
  let debounce = null;
  let requests = 0;
  filter.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { query.page = 1; query.name = filter.value; refresh(); }, 250);
  });
  regex.addEventListener('change', () => { query.regex = regex.checked; query.page = 1; refresh(); });
  size.addEventListener('change', () => { query.pageSize = Number(size.value); query.page = 1; refresh(); });

  function onSort(key) {
    if (query.sort === key) query.reverse = !query.reverse;
    else { query.sort = key; query.reverse = false; }
    // A new order starts from its first rows.
    query.page = 1;
    refresh();
  }

  async function refresh() {
    const params = new URLSearchParams({ page: query.page, page_size: query.pageSize, pagination: 'true' });
    if (query.name) { params.set('name', query.name); params.set('use_regex', String(query.regex)); }
    if (query.sort) { params.set('sort', query.sort); params.set('sort_reverse', String(query.reverse)); }
    if (fields) params.set('columns', fields.join(','));
    let base = path;
    if (perVhost && state.vhost) {
      base = vhostPath ? vhostPath(state.vhost) : `${path}/${encodeURIComponent(state.vhost)}`;
    }
    let result;
    const ticket = ++requests;
    try {
      result = await api('GET', `${base}?${params}`);
      // A tick's request sent before a click may answer after it: keep only the newest.
      if (ticket !== requests) return;
      error.hidden = true;
    } catch (failure) {
      if (ticket !== requests) return;
      error.textContent = `Cannot list ${label}: ${failure.message}`;
      error.hidden = false;
      return;
    }
    if (query.page > result.page_count && result.page_count >= 1) {
      query.page = result.page_count;
      await refresh();
      return;
    }
    // Each part is redrawn only when it changed: a refresh tick then leaves the focus of a
    // keyboard user (on a sort or pager button, or a row's link) where it was.
    const head = redraw(table, 'head', `${query.sort}/${query.reverse}`, () =>
      h('thead', {}, headerRow(columns, query.sort ? { key: query.sort, reverse: query.reverse } : null, onSort)));
    const body = redraw(table, 'body', JSON.stringify(result.items), () => h('tbody', {}, result.items.length
      ? bodyRows(columns, result.items, rowKey)
      : h('tr', {}, h('td', { colspan: columns.length, class: 'muted empty' }, `No ${label}.`))));
    if (head || body) table.replaceChildren(head || table.tHead, body || table.tBodies[0]);
    summary.textContent = result.filtered_count === result.total_count
      ? `${fmt.num(result.total_count)} ${counted(result.total_count, label)}`
      : `${fmt.num(result.filtered_count)} of ${fmt.num(result.total_count)} ${counted(result.total_count, label)}`;
    if (redraw(pager, 'pages', `${result.page}/${result.page_count}`, () => true)) {
      pager.replaceChildren(...pagerButtons(result, (pageNumber) => { query.page = pageNumber; refresh(); }));
    }
  }

  const element = h('div', { class: 'list-table' },
    h('div', { class: 'toolbar' }, filter, h('label', { class: 'compact' }, regex, ' Regex'), size, summary),
    error, h('div', { class: 'table-wrap' }, table), pager);
  return { element, refresh };
}

/** What each part of a table was last drawn from. */
const drawnFrom = new WeakMap();

/** `make()` if `element`'s `part` was last drawn from another `key`, else null. */
function redraw(element, part, key, make) {
  const drawn = drawnFrom.get(element) || {};
  if (drawn[part] === key) return null;
  drawnFrom.set(element, { ...drawn, [part]: key });
  return make();
}

/** "1 queue", "2 queues", "1 policy": the label is plural; one thing drops its ending. */
function counted(count, label) {
  return count === 1 ? label.replace(/ies$/, 'y').replace(/s$/, '') : label;
}

function pagerButtons(result, go) {
  if (result.page_count <= 1) return [];
  const button = (text, target, current = false) => h('button', {
    type: 'button',
    class: current ? 'current' : null,
    'aria-current': current ? 'page' : null,
    disabled: target < 1 || target > result.page_count || current,
    on: { click: () => go(target) },
  }, text);
  const pages = new Set([1, result.page - 1, result.page, result.page + 1, result.page_count]);
  const shown = [...pages].filter((p) => p >= 1 && p <= result.page_count).sort((a, b) => a - b);
  const buttons = [button('‹ Previous', result.page - 1)];
  let last = 0;
  for (const p of shown) {
    if (p - last > 1) buttons.push(h('span', { class: 'muted' }, '…'));
    buttons.push(button(String(p), p, p === result.page));
    last = p;
  }
  buttons.push(button('Next ›', result.page + 1));
  return buttons;
}
