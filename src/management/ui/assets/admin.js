// Administration, as tabs: users (tags, passwords, permissions, limits), virtual hosts (limits,
// permissions), permissions, policies and operator policies, the vhost and user limits, and the
// export and import of definitions in RabbitMQ's JSON format.
//
// Who sees what follows the API: users, permissions, operator policies and definitions are
// the administrator's (others get a note instead of a refused list); everyone sees vhosts,
// policies and limits; the forms appear only to users who may change the objects.

import {
  ApiError, api, can, describeTable, enc, facts, fill, fmt, forgetVhosts, go, h, link, onRefresh, page,
  pages, panel, state, toast, vhostNames,
} from './core.js';
import { dangerButton, form, vhostField } from './forms.js';
import { listTable, staticTable } from './table.js';

const TABS = [
  ['users', 'Users'],
  ['vhosts', 'Virtual hosts'],
  ['permissions', 'Permissions'],
  ['policies', 'Policies'],
  ['operator-policies', 'Operator policies'],
  ['limits', 'Limits'],
  ['definitions', 'Definitions'],
];

const TAGS = ['administrator', 'monitoring', 'policymaker', 'management'];

/**
 * `#/admin/{tab}[/{name}]`. The name is read from the hash itself, one percent-decoded segment,
 * so a name holding `/` (the default vhost, `%2F`) or `%` stays exactly itself.
 */
function adminPath() {
  const raw = location.hash.replace(/^#\/admin\/?/, '').split('?')[0];
  const [tab, ...rest] = raw.split('/');
  let name;
  if (rest.length) {
    try {
      name = rest.map(decodeURIComponent).join('/');
    } catch {
      name = rest.join('/');
    }
  }
  return { tab: tab || (can.administer() ? 'users' : 'vhosts'), name };
}

function tabs(current) {
  return h('nav', { class: 'tabs', 'aria-label': 'Admin sections' }, TABS.map(([key, label]) =>
    h('a', { href: `#/admin/${key}`, 'aria-current': key === current ? 'page' : null }, label)));
}

export async function adminPage(main) {
  const { tab, name } = adminPath();
  const views = {
    users: name === undefined ? usersView : userView,
    vhosts: name === undefined ? vhostsView : vhostView,
    permissions: permissionsView,
    policies: () => policiesView(POLICY_KINDS.policy),
    'operator-policies': () => policiesView(POLICY_KINDS.operator),
    limits: limitsView,
    definitions: definitionsView,
  };
  const view = views[tab];
  if (!view) throw new ApiError(404, 'Not found');
  const { title, content } = await view(name);
  fill(main, page(title, tabs(tab), content));
}

/** What a user without the administrator tag sees instead of an administrator's list. */
function adminOnly(what) {
  return h('p', { class: 'muted', dataset: { adminOnly: what } },
    `${what} are shown to administrators only (you are ${state.user.name}, tagged ${state.user.tags.join(', ') || 'with nothing'}).`);
}

function tagBadges(tags) {
  const list = Array.isArray(tags) ? tags : String(tags || '').split(',').filter(Boolean);
  return list.length ? list.map((tag) => h('span', { class: 'badge' }, tag)) : h('span', { class: 'muted' }, 'none');
}

/** "a, b ,c" → "a,b,c" (the API's comma-separated tags). */
function tagList(text) {
  return String(text || '').split(',').map((t) => t.trim()).filter(Boolean);
}

/** The header's vhost selector, after a vhost was added or deleted here. */
async function syncHeaderVhosts() {
  forgetVhosts();
  const names = await vhostNames().catch(() => []);
  if (state.vhost && !names.includes(state.vhost)) state.vhost = '';
  const select = document.getElementById('vhost-filter');
  if (select) {
    select.replaceChildren(h('option', { value: '' }, 'All'),
      ...names.map((n) => h('option', { value: n, selected: n === state.vhost }, n)));
  }
}

// ---------------------------------------------------------------------------------- users

async function usersView() {
  if (!can.administer()) return { title: 'Users', content: adminOnly('Users') };
  let access = new Map();
  const list = listTable({
    path: '/api/users',
    perVhost: false,
    label: 'users',
    rowKey: (u) => u.name,
    defaultSort: 'name',
    columns: [
      { key: 'name', label: 'Name', render: (u) => link(pages.user(u.name), u.name) },
      { key: 'tags', label: 'Tags', sort: false, render: (u) => tagBadges(u.tags) },
      { key: 'password_hash', label: 'Password', sort: false, render: (u) => (u.password_hash ? 'yes' : h('span', { class: 'badge warn' }, 'no password')) },
      { key: 'vhosts', label: 'Can access', sort: false, render: (u) => vhostLinks(access.get(u.name)) },
    ],
  });
  async function refresh() {
    access = new Map();
    for (const p of await api('GET', '/api/permissions').catch(() => [])) {
      if (!access.has(p.user)) access.set(p.user, []);
      access.get(p.user).push(p.vhost);
    }
    await list.refresh();
  }
  await refresh();
  onRefresh(refresh);
  return {
    title: 'Users',
    content: [list.element, panel('Add or update a user', userForm({ onDone: refresh }))],
  };
}

function vhostLinks(vhosts) {
  if (!vhosts || !vhosts.length) return h('span', { class: 'muted' }, 'no vhost');
  return vhosts.sort().flatMap((v, i) => [i ? ', ' : null, link(pages.vhost(v), v)]);
}

/**
 * Adds or updates a user. A blank password keeps an existing user's password (its hash is
 * sent back), so changing tags does not lock anyone out; "No password" makes a user that can
 * only authenticate by other means.
 */
function userForm({ name, tags = [], onDone }) {
  const element = form({
    id: 'user-form',
    submit: name ? 'Update user' : 'Add user',
    success: 'User saved.',
    fields: [
      { name: 'name', label: 'Name', required: true, value: name },
      { name: 'password', label: 'Password', type: 'password', help: name ? 'Leave blank to keep the current password.' : 'Leave blank to keep the password of an existing user.' },
      { name: 'no_password', label: 'No password', type: 'checkbox', help: 'The user cannot log in with a password.' },
      { name: 'tags', label: 'Tags', value: tags.join(', '), placeholder: 'monitoring', help: 'Comma-separated.' },
    ],
    onSubmit: async (values) => {
      const body = { tags: tagList(values.tags).join(',') };
      if (!values.no_password) {
        if (values.password) body.password = values.password;
        else Object.assign(body, await keptPassword(values.name));
      }
      await api('PUT', `/api/users/${enc(values.name)}`, body);
      if (onDone) await onDone();
    },
  });
  if (name) element.elements.namedItem('name').readOnly = true;
  addTagButtons(element.elements.namedItem('tags'));
  return element;
}

async function keptPassword(name) {
  try {
    const user = await api('GET', `/api/users/${enc(name)}`);
    return { password_hash: user.password_hash, hashing_algorithm: user.hashing_algorithm };
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      throw new Error('A new user needs a password (or tick "No password").');
    }
    throw error;
  }
}

/** Buttons under the tags field that add a tag (once). */
function addTagButtons(input) {
  const buttons = h('div', { class: 'tag-buttons', role: 'group', 'aria-label': 'Add a tag' }, TAGS.map((tag) =>
    h('button', {
      type: 'button',
      on: {
        click: () => {
          const current = tagList(input.value);
          if (!current.includes(tag)) input.value = [...current, tag].join(', ');
          input.focus();
        },
      },
    }, `+ ${tag}`)));
  input.after(buttons);
}

async function userView(name) {
  if (!can.administer()) return { title: `User ${name}`, content: adminOnly('Users') };
  const user = await api('GET', `/api/users/${enc(name)}`);
  const permissions = h('div', { id: 'user-permissions' });
  const topic = h('div', { id: 'user-topic-permissions' });
  const limits = h('div', { id: 'user-limits' });
  let current = {};
  async function refresh() {
    const [perms, topics, found] = await Promise.all([
      api('GET', `/api/users/${enc(name)}/permissions`),
      api('GET', `/api/users/${enc(name)}/topic-permissions`),
      api('GET', `/api/user-limits/${enc(name)}`),
    ]);
    fill(permissions, permissionTable(perms, { showUser: false, onChange: refresh }));
    fill(topic, topicPermissionTable(topics, { showUser: false, onChange: refresh }));
    current = (found[0] && found[0].value) || {};
    fill(limits, limitFacts(USER_LIMITS, current));
  }
  await refresh();
  onRefresh(refresh);
  const tags = Array.isArray(user.tags) ? user.tags : tagList(user.tags);
  return {
    title: `User ${name}`,
    content: [
      panel('Details', facts([
        ['Name', user.name],
        ['Tags', tagBadges(tags)],
        ['Password', user.password_hash ? `set (${user.hashing_algorithm})` : 'none: cannot log in with a password'],
      ])),
      panel('Permissions', permissions),
      panel('Set a permission', await permissionForm({ user: name, onDone: refresh })),
      panel('Topic permissions', topic),
      panel('Set a topic permission', await topicPermissionForm({ user: name, onDone: refresh })),
      panel('Limits', limits, limitsForm(USER_LIMIT_KIND, name, () => current, refresh)),
      panel('Update this user', userForm({ name, tags, onDone: () => go(pages.user(name)) })),
      panel('Delete this user', h('p', { class: 'muted' }, 'Its permissions go with it; its open connections stay until they close.'),
        dangerButton('Delete user', `Delete user ${name}?`, () => api('DELETE', `/api/users/${enc(name)}`),
          { success: `User ${name} deleted.`, then: () => go('#/admin/users') })),
    ],
  };
}

// ---------------------------------------------------------------------------- permissions

function permissionTable(items, { showUser = true, showVhost = true, onChange }) {
  return staticTable([
    showUser ? { key: 'user', label: 'User', render: (p) => link(pages.user(p.user), p.user) } : null,
    showVhost ? { key: 'vhost', label: 'Virtual host', render: (p) => link(pages.vhost(p.vhost), p.vhost) } : null,
    { key: 'configure', label: 'Configure', render: (p) => h('code', {}, p.configure) },
    { key: 'write', label: 'Write', render: (p) => h('code', {}, p.write) },
    { key: 'read', label: 'Read', render: (p) => h('code', {}, p.read) },
    { key: 'clear', label: 'Actions', render: (p) => dangerButton('Clear', `Clear ${p.user}'s permission in ${p.vhost}?`,
      () => api('DELETE', `/api/permissions/${enc(p.vhost)}/${enc(p.user)}`), { success: 'Permission cleared.', then: onChange }) },
  ].filter(Boolean), items, { empty: 'No permissions.', rowKey: (p) => `${p.vhost}/${p.user}` });
}

function topicPermissionTable(items, { showUser = true, showVhost = true, onChange }) {
  return staticTable([
    showUser ? { key: 'user', label: 'User', render: (p) => link(pages.user(p.user), p.user) } : null,
    showVhost ? { key: 'vhost', label: 'Virtual host', render: (p) => link(pages.vhost(p.vhost), p.vhost) } : null,
    { key: 'exchange', label: 'Exchange' },
    { key: 'write', label: 'Write', render: (p) => h('code', {}, p.write) },
    { key: 'read', label: 'Read', render: (p) => h('code', {}, p.read) },
    { key: 'clear', label: 'Actions', render: (p) => dangerButton('Clear', `Clear ${p.user}'s topic permissions in ${p.vhost}?`,
      () => api('DELETE', `/api/topic-permissions/${enc(p.vhost)}/${enc(p.user)}`), { success: 'Topic permissions cleared.', then: onChange }) },
  ].filter(Boolean), items, { empty: 'No topic permissions.', rowKey: (p) => `${p.vhost}/${p.user}/${p.exchange}` });
}

/** A select of the broker's users (administrators only, as the list is). */
async function userField() {
  const users = await api('GET', '/api/users?columns=name');
  const names = users.map((u) => u.name).sort();
  return { name: 'user', label: 'User', type: 'select', options: names.map((n) => [n, n]), value: names[0] };
}

/** Sets a user's permission in a vhost; `user` or `vhost` fixed by the page, else chosen. */
async function permissionForm({ user, vhost, onDone }) {
  const regex = (field, label) => ({ name: field, label, value: '.*', required: false, help: field === 'read' ? 'Regular expressions over resource names; an empty one allows nothing.' : null });
  return form({
    id: 'permission-form',
    submit: 'Set permission',
    success: 'Permission set.',
    fields: [
      user ? null : await userField(),
      vhost ? null : await vhostField(),
      regex('configure', 'Configure'),
      regex('write', 'Write'),
      regex('read', 'Read'),
    ].filter(Boolean),
    onSubmit: async (values) => {
      const target = `/api/permissions/${enc(vhost || values.vhost)}/${enc(user || values.user)}`;
      await api('PUT', target, { configure: values.configure, write: values.write, read: values.read });
      if (onDone) await onDone();
    },
  });
}

async function topicPermissionForm({ user, vhost, onDone }) {
  return form({
    id: 'topic-permission-form',
    submit: 'Set topic permission',
    success: 'Topic permission set.',
    fields: [
      user ? null : await userField(),
      vhost ? null : await vhostField(),
      { name: 'exchange', label: 'Exchange', value: 'amq.topic', required: true },
      { name: 'write', label: 'Write', value: '.*' },
      { name: 'read', label: 'Read', value: '.*', help: 'Regular expressions over routing keys.' },
    ].filter(Boolean),
    onSubmit: async (values) => {
      const target = `/api/topic-permissions/${enc(vhost || values.vhost)}/${enc(user || values.user)}`;
      await api('PUT', target, { exchange: values.exchange, write: values.write, read: values.read });
      if (onDone) await onDone();
    },
  });
}

async function permissionsView() {
  if (!can.administer()) return { title: 'Permissions', content: adminOnly('Permissions') };
  const permissions = h('div', { id: 'all-permissions' });
  const topic = h('div', { id: 'all-topic-permissions' });
  async function refresh() {
    const [perms, topics] = await Promise.all([api('GET', '/api/permissions'), api('GET', '/api/topic-permissions')]);
    const inScope = (p) => !state.vhost || p.vhost === state.vhost;
    fill(permissions, permissionTable(perms.filter(inScope), { onChange: refresh }));
    fill(topic, topicPermissionTable(topics.filter(inScope), { onChange: refresh }));
  }
  await refresh();
  onRefresh(refresh);
  return {
    title: 'Permissions',
    content: [
      panel('Permissions', permissions),
      panel('Set a permission', await permissionForm({ onDone: refresh })),
      panel('Topic permissions', topic),
      panel('Set a topic permission', await topicPermissionForm({ onDone: refresh })),
    ],
  };
}

// -------------------------------------------------------------------------------- vhosts

const QUEUE_TYPES = ['classic', 'quorum', 'stream'];

async function vhostsView() {
  const list = listTable({
    path: '/api/vhosts',
    perVhost: false,
    label: 'virtual hosts',
    rowKey: (v) => v.name,
    defaultSort: 'name',
    columns: [
      { key: 'name', label: 'Name', render: (v) => link(pages.vhost(v.name), v.name) },
      { key: 'description', label: 'Description' },
      { key: 'tags', label: 'Tags', sort: false, render: (v) => tagBadges(v.tags) },
      { key: 'default_queue_type', label: 'Default queue type' },
      { key: 'tracing', label: 'Tracing', render: (v) => fmt.yes(v.tracing) },
      { key: 'messages', label: 'Messages', numeric: true },
      { key: 'messages_ready', label: 'Ready', numeric: true },
      { key: 'messages_unacknowledged', label: 'Unacked', numeric: true },
    ],
  });
  await list.refresh();
  onRefresh(list.refresh);
  return {
    title: 'Virtual hosts',
    content: [list.element, can.administer() ? panel('Add or update a virtual host', vhostForm({ onDone: list.refresh })) : null],
  };
}

function vhostForm({ vhost, onDone }) {
  const element = form({
    id: 'vhost-form',
    submit: vhost ? 'Update virtual host' : 'Add virtual host',
    success: 'Virtual host saved.',
    reset: !vhost,
    fields: [
      { name: 'name', label: 'Name', required: true, value: vhost?.name },
      { name: 'description', label: 'Description', value: vhost?.description },
      { name: 'tags', label: 'Tags', value: vhost ? tagList(Array.isArray(vhost.tags) ? vhost.tags.join(',') : vhost.tags).join(', ') : '', help: 'Comma-separated.' },
      { name: 'default_queue_type', label: 'Default queue type', type: 'select', options: QUEUE_TYPES.map((t) => [t, t]), value: vhost?.default_queue_type || 'classic' },
      { name: 'tracing', label: 'Tracing', type: 'checkbox', value: vhost?.tracing, help: 'Copies every message to amq.rabbitmq.trace (not kept over a restart).' },
    ],
    onSubmit: async (values) => {
      await api('PUT', `/api/vhosts/${enc(values.name)}`, {
        description: values.description,
        tags: tagList(values.tags),
        default_queue_type: values.default_queue_type,
        tracing: values.tracing,
      });
      await syncHeaderVhosts();
      if (onDone) await onDone();
    },
  });
  if (vhost) element.elements.namedItem('name').readOnly = true;
  return element;
}

async function vhostView(name) {
  const vhost = await api('GET', `/api/vhosts/${enc(name)}`);
  const limits = h('div', { id: 'vhost-limits' });
  const permissions = h('div', { id: 'vhost-permissions' });
  let current = {};
  async function refresh() {
    const found = await api('GET', `/api/vhost-limits/${enc(name)}`);
    current = (found[0] && found[0].value) || {};
    fill(limits, limitFacts(LIMITS, current));
    if (can.administer()) {
      fill(permissions, permissionTable(await api('GET', `/api/vhosts/${enc(name)}/permissions`), { showVhost: false, onChange: refresh }));
    }
  }
  await refresh();
  onRefresh(refresh);
  const admin = can.administer();
  return {
    title: `Virtual host ${name}`,
    content: [
      panel('Details', facts([
        ['Name', vhost.name],
        ['Description', vhost.description],
        ['Tags', tagBadges(vhost.tags)],
        ['Default queue type', vhost.default_queue_type],
        ['Tracing', fmt.yes(vhost.tracing)],
        ['Messages', `${fmt.num(vhost.messages)} (${fmt.num(vhost.messages_ready)} ready, ${fmt.num(vhost.messages_unacknowledged)} unacked)`],
      ])),
      panel('Limits', limits, admin ? limitsForm(VHOST_LIMIT_KIND, name, () => current, refresh) : null),
      panel('Permissions', admin ? permissions : adminOnly('Permissions')),
      admin ? panel('Set a permission', await permissionForm({ vhost: name, onDone: refresh })) : null,
      admin ? panel('Update this virtual host', vhostForm({ vhost, onDone: () => go(pages.vhost(name)) })) : null,
      admin ? panel('Delete this virtual host', h('p', { class: 'muted' }, 'Deletes its queues with their messages, its exchanges, bindings, policies and permissions.'),
        dangerButton('Delete virtual host', `Delete virtual host ${name} with all its queues and messages?`,
          () => api('DELETE', `/api/vhosts/${enc(name)}`),
          { success: `Virtual host ${name} deleted.`, then: async () => { await syncHeaderVhosts(); go('#/admin/vhosts'); } })) : null,
    ],
  };
}

const LIMITS = [['max-connections', 'Max connections'], ['max-queues', 'Max queues']];
/** A user's limits count over all of the user's connections (RabbitMQ's user limits). */
const USER_LIMITS = [['max-connections', 'Max connections'], ['max-channels', 'Max channels']];
const VHOST_LIMIT_KIND = { id: 'vhost-limits-form', api: 'vhost-limits', limits: LIMITS };
const USER_LIMIT_KIND = { id: 'user-limits-form', api: 'user-limits', limits: USER_LIMITS };

function limitFacts(limits, value) {
  return facts(limits.map(([key, label]) => [label, value[key] === undefined || value[key] < 0 ? 'no limit' : fmt.num(value[key])]));
}

/** Sets or clears each limit of a vhost or a user: a number is PUT, an empty field DELETEs it. */
function limitsForm(kind, owner, current, onDone) {
  const now = current();
  const last = kind.limits[kind.limits.length - 1][0];
  return form({
    id: kind.id,
    submit: 'Save limits',
    success: 'Limits saved.',
    reset: false,
    fields: kind.limits.map(([key, label]) => ({
      name: key, label, type: 'number', value: now[key] ?? '', help: key === last ? 'Empty: no limit.' : null,
    })),
    onSubmit: async (values) => {
      for (const [key] of kind.limits) {
        const path = `/api/${kind.api}/${enc(owner)}/${key}`;
        if (values[key] === undefined) await api('DELETE', path);
        else await api('PUT', path, { value: values[key] });
      }
      await onDone();
    },
  });
}

async function limitsView() {
  const table = h('div', { id: 'all-limits' });
  const users = h('div', { id: 'all-user-limits' });
  async function refresh() {
    const [items, userItems] = await Promise.all([
      api('GET', state.vhost ? `/api/vhost-limits/${enc(state.vhost)}` : '/api/vhost-limits'),
      api('GET', '/api/user-limits'),
    ]);
    const number = (v) => (v === undefined || v < 0 ? 'no limit' : fmt.num(v));
    fill(table, staticTable([
      { key: 'vhost', label: 'Virtual host', render: (l) => link(pages.vhost(l.vhost), l.vhost) },
      { key: 'value.max-connections', label: 'Max connections', numeric: true, render: (l) => number(l.value['max-connections']) },
      { key: 'value.max-queues', label: 'Max queues', numeric: true, render: (l) => number(l.value['max-queues']) },
    ], items, { empty: 'No virtual host has limits.', rowKey: (l) => l.vhost }));
    fill(users, staticTable([
      { key: 'user', label: 'User', render: (l) => (can.administer() ? link(pages.user(l.user), l.user) : l.user) },
      { key: 'value.max-connections', label: 'Max connections', numeric: true, render: (l) => number(l.value['max-connections']) },
      { key: 'value.max-channels', label: 'Max channels', numeric: true, render: (l) => number(l.value['max-channels']) },
    ], userItems, { empty: 'No user has limits.', rowKey: (l) => l.user }));
  }
  await refresh();
  onRefresh(refresh);
  return {
    title: 'Limits',
    content: [
      panel('Virtual host limits', table),
      panel('User limits', users),
      h('p', { class: 'muted' }, 'Limits are set on each virtual host\'s page (', link('#/admin/vhosts', 'virtual hosts'),
        ') and each user\'s page (', link('#/admin/users', 'users'), ').'),
    ],
  };
}

// ------------------------------------------------------------------------------ policies

/** Keys a policy may set (those Hare accepts, as RabbitMQ 3.13), with their value types. */
const POLICY_KEYS = [
  { key: 'max-length', type: 'number', help: 'Messages the queue holds at most' },
  { key: 'max-length-bytes', type: 'number', help: 'Body bytes the queue holds at most' },
  { key: 'overflow', type: 'string', help: 'drop-head, reject-publish or reject-publish-dlx' },
  { key: 'message-ttl', type: 'number', help: 'Milliseconds a message may wait' },
  { key: 'expires', type: 'number', help: 'Milliseconds unused before the queue is deleted' },
  { key: 'dead-letter-exchange', type: 'string', help: 'Exchange for dropped and rejected messages' },
  { key: 'dead-letter-routing-key', type: 'string', help: 'Routing key for dead-lettered messages' },
  { key: 'dead-letter-strategy', type: 'string', help: 'at-most-once or at-least-once (quorum)' },
  { key: 'alternate-exchange', type: 'string', help: 'Exchange for unroutable messages' },
  { key: 'delivery-limit', type: 'number', help: 'Redeliveries before dead-lettering (quorum)' },
  { key: 'consumer-timeout', type: 'number', help: 'Milliseconds a delivery may stay unacked' },
  { key: 'queue-mode', type: 'string', help: 'default or lazy' },
  { key: 'queue-version', type: 'number', help: '1 or 2' },
  { key: 'max-in-memory-length', type: 'number', help: 'Quorum queues' },
  { key: 'max-in-memory-bytes', type: 'number', help: 'Quorum queues' },
  { key: 'queue-leader-locator', type: 'string', help: 'client-local or balanced' },
  { key: 'initial-cluster-size', type: 'number', help: 'Quorum queue replicas' },
  { key: 'max-age', type: 'string', help: 'Streams, e.g. 7D' },
];

const OPERATOR_KEYS = ['expires', 'message-ttl', 'max-length', 'max-length-bytes', 'max-in-memory-length',
  'max-in-memory-bytes', 'delivery-limit', 'queue-version', 'overflow'];

const POLICY_KINDS = {
  policy: {
    path: 'policies',
    formId: 'policy-form',
    title: 'Policies',
    noun: 'policy',
    may: () => can.makePolicies(),
    listable: () => true,
    applyTo: ['all', 'queues', 'classic_queues', 'quorum_queues', 'streams', 'exchanges'],
    keys: POLICY_KEYS,
  },
  operator: {
    path: 'operator-policies',
    formId: 'operator-policy-form',
    title: 'Operator policies',
    noun: 'operator policy',
    may: () => can.administer(),
    listable: () => can.administer(),
    applyTo: ['queues', 'classic_queues', 'quorum_queues', 'streams'],
    keys: POLICY_KEYS.filter((k) => OPERATOR_KEYS.includes(k.key)),
  },
};

async function policiesView(kind) {
  if (!kind.listable()) return { title: kind.title, content: adminOnly(kind.title) };
  const formBox = h('div');
  const may = kind.may();
  async function showForm(initial = {}) {
    fill(formBox, await policyForm(kind, initial, list.refresh));
  }
  const actions = (p) => [
    h('button', {
      type: 'button',
      on: {
        click: async () => {
          await showForm(p);
          formBox.scrollIntoView({ block: 'start' });
          formBox.querySelector('[name="pattern"]').focus();
        },
      },
    }, 'Edit'),
    ' ',
    dangerButton('Delete', `Delete ${kind.noun} ${p.name} in ${p.vhost}?`,
      () => api('DELETE', `/api/${kind.path}/${enc(p.vhost)}/${enc(p.name)}`),
      { success: `Deleted ${kind.noun} ${p.name}.`, then: () => list.refresh() }),
  ];
  const list = listTable({
    path: `/api/${kind.path}`,
    label: kind.title.toLowerCase(),
    rowKey: (p) => `${p.vhost}/${p.name}`,
    defaultSort: 'name',
    columns: [
      { key: 'vhost', label: 'Virtual host' },
      { key: 'name', label: 'Name' },
      { key: 'pattern', label: 'Pattern', render: (p) => h('code', {}, p.pattern) },
      { key: 'apply-to', label: 'Apply to' },
      { key: 'definition', label: 'Definition', sort: false, render: (p) => describeTable(p.definition) },
      { key: 'priority', label: 'Priority', numeric: true },
      may ? { key: 'actions', label: 'Actions', sort: false, render: actions } : null,
    ].filter(Boolean),
  });
  await list.refresh();
  onRefresh(list.refresh);
  if (may) await showForm();
  return {
    title: kind.title,
    content: [list.element, may ? panel(`Add or update ${kind.noun === 'policy' ? 'a policy' : 'an operator policy'}`, formBox) : null],
  };
}

async function policyForm(kind, initial, onDone) {
  return form({
    id: kind.formId,
    submit: initial.name ? `Update ${kind.noun}` : `Add ${kind.noun}`,
    success: `${kind.noun[0].toUpperCase()}${kind.noun.slice(1)} saved.`,
    fields: [
      await vhostField(initial.vhost || state.vhost),
      { name: 'name', label: 'Name', required: true, value: initial.name },
      { name: 'pattern', label: 'Pattern', required: true, value: initial.pattern, placeholder: '^orders\\.', help: 'A regular expression matched against queue or exchange names.' },
      { name: 'apply-to', label: 'Apply to', type: 'select', options: kind.applyTo.map((a) => [a, a.replace('_', ' ')]), value: initial['apply-to'] || kind.applyTo[0] },
      { name: 'priority', label: 'Priority', type: 'number', value: initial.priority ?? 0, help: 'The highest priority among matching policies wins.' },
      { name: 'definition', label: 'Definition', type: 'args', value: initial.definition || {}, keys: kind.keys, help: `Keys: ${kind.keys.map((k) => k.key).join(', ')}.` },
    ],
    onSubmit: async (values) => {
      await api('PUT', `/api/${kind.path}/${enc(values.vhost)}/${enc(values.name)}`, {
        pattern: values.pattern,
        definition: values.definition,
        priority: values.priority ?? 0,
        'apply-to': values['apply-to'],
      });
      await onDone();
    },
  });
}

// --------------------------------------------------------------------------- definitions

async function definitionsView() {
  if (!can.administer()) return { title: 'Definitions', content: adminOnly('Definitions') };
  const names = await vhostNames();
  const scope = (id) => h('select', { id, name: 'vhost' },
    h('option', { value: '' }, 'All virtual hosts'), names.map((n) => h('option', { value: n }, n)));
  const exportScope = scope('export-vhost');
  const exported = h('p', { id: 'export-result', role: 'status' });
  const exportButton = h('button', { type: 'button', class: 'primary', on: { click: () => download(exportScope.value, exported) } }, 'Download definitions');
  const result = h('div', { id: 'import-result', 'aria-live': 'polite' });
  const importForm = form({
    id: 'definitions-import',
    submit: 'Import',
    success: 'Definitions imported.',
    fields: [
      { name: 'file', label: 'Definitions file', type: 'file', required: true, help: 'JSON as exported by RabbitMQ or Hare; merged into what exists.' },
      { name: 'vhost', label: 'Into', type: 'select', options: [['', 'All virtual hosts (as in the file)'], ...names.map((n) => [n, `Virtual host ${n} only`])] },
    ],
    onSubmit: (values) => importDefinitions(values, result),
  });
  return {
    title: 'Definitions',
    content: [
      panel('Export',
        h('p', { class: 'muted' }, 'Users, virtual hosts, permissions, policies, queues, exchanges and bindings, as a RabbitMQ definitions file.'),
        h('div', { class: 'toolbar' }, h('label', { for: 'export-vhost' }, 'Of'), exportScope, exportButton),
        exported),
      panel('Import', importForm, result),
    ],
  };
}

/** The file name of an export: hare-definitions[-vhost]-YYYY-MM-DD.json. */
function exportName(vhost) {
  const day = new Date().toISOString().slice(0, 10);
  const part = vhost ? `-${vhost.replace(/[^A-Za-z0-9._-]+/g, '_') || 'default'}` : '';
  return `hare-definitions${part}-${day}.json`;
}

/**
 * Fetches the export with the signed-in user's credentials (a plain link could not send
 * them) and saves it through a Blob URL and `<a download>`: no new window, no second request.
 * The link stays on the page so the file can be saved again.
 */
let lastExportUrl = null;
async function download(vhost, where) {
  let data;
  try {
    data = await api('GET', vhost ? `/api/definitions/${enc(vhost)}` : '/api/definitions');
  } catch (error) {
    toast(`${error.status || ''} ${error.message}`.trim(), 'error');
    return;
  }
  if (lastExportUrl) URL.revokeObjectURL(lastExportUrl);
  lastExportUrl = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' }));
  const name = exportName(vhost);
  const anchor = h('a', { href: lastExportUrl, download: name, id: 'definitions-download' }, name);
  fill(where, 'Saved ', anchor, ` (${summary(data)}).`);
  anchor.click();
}

/** "2 vhosts, 3 queues, …" of a definitions object. */
function summary(data) {
  const kinds = [['users', 'user'], ['vhosts', 'vhost'], ['permissions', 'permission'], ['policies', 'policy'],
    ['queues', 'queue'], ['exchanges', 'exchange'], ['bindings', 'binding']];
  const plural = (one, count) => (count === 1 ? one : one.replace(/y$/, 'ie') + 's');
  const parts = kinds.filter(([key]) => Array.isArray(data[key]))
    .map(([key, one]) => `${data[key].length} ${plural(one, data[key].length)}`);
  return parts.join(', ') || 'nothing';
}

/**
 * Sends the file as it is, marked as JSON; the API parses it and says what is wrong (a file
 * that is not JSON is its 400). The outcome also stays on the page, next to the form.
 */
async function importDefinitions(values, result) {
  const file = values.file;
  if (!file) throw new Error('Choose a definitions file.');
  const text = await file.text();
  const path = values.vhost ? `/api/definitions/${enc(values.vhost)}` : '/api/definitions';
  try {
    await api('POST', path, text, { headers: { 'Content-Type': 'application/json' } });
  } catch (error) {
    fill(result, h('p', { class: 'error', role: 'alert' },
      `${file.name} was refused: ${error instanceof ApiError ? `${error.status} ${error.reason}` : error.message}`));
    throw error;
  }
  let parsed = {};
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = {};
  }
  fill(result, h('p', { class: 'ok' }, `Imported ${file.name}${values.vhost ? ` into ${values.vhost}` : ''}: ${summary(parsed)}.`));
  await syncHeaderVhosts();
}
