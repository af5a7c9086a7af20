// The web UI's entry: signing in and out, the header, and the router from `#/…` to pages.
// Each page is a function `(main, params)` in its module; it fills `main` and registers what
// to redo on each refresh (core.onRefresh). Navigation drops the previous page's refreshers.

import {
  api, clearRefreshers, fill, forgetCredentials, forgetVhosts, h, hasCredentials, page,
  saveCredentials, setRefreshInterval, setUnauthorisedHandler, state, vhostNames,
} from './core.js';
import { overviewPage } from './overview.js';
import { channelPage, channelsPage, connectionPage, connectionsPage } from './connections.js';
import { exchangePage, exchangesPage } from './exchanges.js';
import { queuePage, queuesPage } from './queues.js';
import { adminPage } from './admin.js';

/** `[pattern, page, title]`: the first pattern matching the hash wins; groups are params. */
const ROUTES = [
  [/^\/?$/, overviewPage, 'Overview'],
  [/^\/connections$/, connectionsPage, 'Connections'],
  [/^\/connections\/([^/]+)$/, connectionPage, 'Connection'],
  [/^\/channels$/, channelsPage, 'Channels'],
  [/^\/channels\/([^/]+)$/, channelPage, 'Channel'],
  [/^\/exchanges$/, exchangesPage, 'Exchanges'],
  [/^\/exchanges\/([^/]+)\/([^/]+)$/, exchangePage, 'Exchange'],
  [/^\/queues$/, queuesPage, 'Queues'],
  [/^\/queues\/([^/]+)\/([^/]+)$/, queuePage, 'Queue'],
  [/^\/admin(?:\/(.*))?$/, adminPage, 'Admin'],
];

const NAV = [
  ['#/', 'Overview'],
  ['#/connections', 'Connections'],
  ['#/channels', 'Channels'],
  ['#/exchanges', 'Exchanges'],
  ['#/queues', 'Queues'],
  ['#/admin', 'Admin'],
];

const main = document.getElementById('main');

async function start() {
  setUnauthorisedHandler((reason) => {
    forgetCredentials();
    showLogin(reason === 'Login failed' ? 'Your credentials no longer work. Sign in again.' : reason);
  });
  const stored = Number(localStorage.getItem('hare.refreshMs') ?? 5000);
  const interval = document.getElementById('refresh-interval');
  interval.value = String(stored);
  setRefreshInterval(stored);
  interval.addEventListener('change', () => setRefreshInterval(Number(interval.value)));
  document.getElementById('logout').addEventListener('click', logout);
  const vhostSelect = document.getElementById('vhost-filter');
  state.vhost = sessionStorage.getItem('hare.vhost') || '';
  vhostSelect.addEventListener('change', () => {
    state.vhost = vhostSelect.value;
    sessionStorage.setItem('hare.vhost', state.vhost);
    route();
  });
  window.addEventListener('hashchange', route);
  if (hasCredentials() && await signIn()) return;
  showLogin();
}

/** Checks the stored credentials with /api/whoami; shows the app if they work. */
async function signIn() {
  try {
    const me = await api('GET', '/api/whoami', undefined, { quiet401: true });
    state.user = { name: me.name, tags: Array.isArray(me.tags) ? me.tags : String(me.tags || '').split(',').filter(Boolean) };
  } catch (error) {
    forgetCredentials();
    showLogin(error.status === 401 ? loginReason(error.reason) : `Cannot reach the broker: ${error.message}`);
    return true;
  }
  document.getElementById('whoami').textContent = `${state.user.name} (${state.user.tags.join(', ') || 'no tags'})`;
  const top = document.getElementById('top');
  top.hidden = false;
  await fillVhosts();
  route();
  return true;
}

function loginReason(reason) {
  if (reason === 'Login failed') return 'Login failed: wrong user name or password.';
  return reason ? `Login refused: ${reason}` : 'Login failed.';
}

async function fillVhosts() {
  forgetVhosts();
  const select = document.getElementById('vhost-filter');
  let names = [];
  try {
    names = await vhostNames();
  } catch {
    names = [];
  }
  if (state.vhost && !names.includes(state.vhost)) state.vhost = '';
  select.replaceChildren(h('option', { value: '' }, 'All'), ...names.map((n) => h('option', { value: n, selected: n === state.vhost }, n)));
}

function showLogin(message) {
  clearRefreshers();
  document.getElementById('top').hidden = true;
  state.user = null;
  const user = h('input', { id: 'login-username', name: 'username', autocomplete: 'username', required: true });
  const password = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const login = h('form', { id: 'login', class: 'form login' },
    h('div', { class: 'field' }, h('label', { for: 'login-username' }, 'Username'), user),
    h('div', { class: 'field' }, h('label', { for: 'login-password' }, 'Password'), password),
    message ? h('p', { class: 'error', role: 'alert' }, message) : null,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Log in')));
  login.addEventListener('submit', async (event) => {
    event.preventDefault();
    saveCredentials(user.value, password.value);
    await signIn();
  });
  fill(main, h('section', { class: 'page login-page' }, h('h1', {}, 'Hare'), h('p', { class: 'muted' }, 'Sign in with a broker user that has a management tag.'), login));
  user.focus();
}

function logout() {
  forgetCredentials();
  sessionStorage.removeItem('hare.vhost');
  showLogin('You are logged out.');
}

function renderNav(path) {
  const nav = document.getElementById('nav');
  nav.replaceChildren(...NAV.map(([hash, label]) => {
    const target = hash.slice(1);
    const current = target === '/' ? path === '/' || path === '' : path.startsWith(target);
    return h('a', { href: hash, 'aria-current': current ? 'page' : null }, label);
  }));
}

async function route() {
  if (!state.user) return;
  clearRefreshers();
  const path = decodeHashPath(location.hash);
  renderNav(path);
  for (const [pattern, render, title] of ROUTES) {
    const match = pattern.exec(path);
    if (!match) continue;
    const params = match.slice(1).map((part) => (part === undefined ? undefined : decodeURIComponent(part)));
    document.title = `${title} · Hare`;
    fill(main, h('p', { class: 'muted' }, 'Loading…'));
    try {
      await render(main, params);
    } catch (error) {
      fill(main, page(title, h('p', { class: 'error', role: 'alert' },
        error.status === 404 ? `Not found: ${params.filter(Boolean).join(' / ')}` : `Cannot show this page: ${error.message}`)));
    }
    main.focus({ preventScroll: true });
    return;
  }
  fill(main, page('Not found', h('p', {}, 'No such page. '), h('a', { href: '#/' }, 'Go to the overview')));
}

/** The path of `#/…` without its query, segments still percent-encoded. */
function decodeHashPath(hash) {
  const path = hash.replace(/^#/, '').split('?')[0];
  return path === '' ? '/' : path;
}

start();
