// The pieces every page uses: the API call with the signed-in user's credentials, a small
// DOM builder, number and time formatting, notices, and the refresh ticker.
//
// Credentials are kept in sessionStorage (this tab only, gone when it closes) and sent as HTTP
// Basic with each /api request, so the API's own tag rules decide what the UI may do.

export const state = {
  /** `{name, tags: [..]}` once signed in. */
  user: null,
  /** The vhost the header selects; '' is all of them. */
  vhost: '',
  /** Milliseconds between refreshes (0: off). */
  refreshMs: 5000,
};

const AUTH_KEY = 'hare.auth';

/** An answer other than 2xx from the API, with RabbitMQ's `reason` when it gave one. */
export class ApiError extends Error {
  constructor(status, reason) {
    super(reason || `HTTP ${status}`);
    this.status = status;
    this.reason = reason;
  }
}

export function saveCredentials(user, password) {
  // btoa takes Latin-1 only: encode UTF-8 bytes first so any password works.
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  sessionStorage.setItem(AUTH_KEY, btoa(binary));
}

export function forgetCredentials() {
  sessionStorage.removeItem(AUTH_KEY);
}

export function hasCredentials() {
  return sessionStorage.getItem(AUTH_KEY) !== null;
}

/** Called when the API says the stored credentials no longer work (set by app.js). */
let onUnauthorised = () => {};
export function setUnauthorisedHandler(handler) {
  onUnauthorised = handler;
}

/**
 * Calls the API. `path` starts with `/api/`; `body` (an object) is sent as JSON, a FormData
 * or string as is. `headers` adds request headers (e.g. `X-Reason`, or a `Content-Type` for a
 * string body). Resolves to the parsed JSON (or null for 204); rejects with ApiError.
 */
export async function api(method, path, body, { quiet401 = false, headers: extra = {} } = {}) {
  const headers = { Accept: 'application/json', ...extra };
  const auth = sessionStorage.getItem(AUTH_KEY);
  if (auth) headers.Authorization = `Basic ${auth}`;
  let payload = body;
  if (body !== undefined && !(body instanceof FormData) && typeof body !== 'string') {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload, cache: 'no-store' });
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const reason = data && typeof data === 'object' ? data.reason || data.error : String(data || '');
    if (response.status === 401 && !quiet401 && auth) onUnauthorised(reason);
    throw new ApiError(response.status, reason);
  }
  return data;
}

/** A path segment (vhost, queue or exchange name) for an API or page URL. */
export function enc(name) {
  return encodeURIComponent(name);
}

/**
 * Builds an element. `attrs`: `class`, `text`, `on: {event: handler}`, `dataset`, booleans
 * (set when true), and any other attribute. Children: nodes, strings, arrays, null (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const element = tag.startsWith('svg:')
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'on') {
      for (const [event, handler] of Object.entries(value)) element.addEventListener(event, handler);
    } else if (key === 'dataset') {
      Object.assign(element.dataset, value);
    } else if (key === 'text') {
      element.textContent = value;
    } else if (value === true) {
      element.setAttribute(key, '');
    } else {
      element.setAttribute(key, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces everything in `element` with `children`. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** A link to a page of the UI (`hash` like `#/queues/%2F/q`). */
export function link(hash, text) {
  return h('a', { href: hash }, text);
}

/** Goes to a page of the UI (after deleting an object, say); the same page is redrawn. */
export function go(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else location.hash = hash;
}

/** The hash of an object's page. */
export const pages = {
  queue: (vhost, name) => `#/queues/${enc(vhost)}/${enc(name)}`,
  exchange: (vhost, name) => `#/exchanges/${enc(vhost)}/${enc(name || 'amq.default')}`,
  connection: (name) => `#/connections/${enc(name)}`,
  channel: (name) => `#/channels/${enc(name)}`,
  user: (name) => `#/admin/users/${enc(name)}`,
  vhost: (name) => `#/admin/vhosts/${enc(name)}`,
};

export const fmt = {
  /** 1234567 → "1,234,567". */
  num(value) {
    if (value === null || value === undefined || Number.isNaN(value)) return '–';
    return Math.round(value).toLocaleString('en-US');
  },
  /** A rate per second, short: 0.4/s, 12/s, 1.2k/s, 3.4M/s. */
  rate(value) {
    if (value === null || value === undefined || Number.isNaN(value)) return '–';
    return `${fmt.short(value)}/s`;
  },
  /** A count with k/M/G, e.g. for axes. */
  short(value) {
    const abs = Math.abs(value);
    if (abs >= 1e9) return `${trim(value / 1e9)}G`;
    if (abs >= 1e6) return `${trim(value / 1e6)}M`;
    if (abs >= 1e4) return `${trim(value / 1e3)}k`;
    if (abs >= 10 || abs === 0) return String(Math.round(value));
    return trim(value);
  },
  /** Bytes in binary units: 512 B, 1.5 KiB, 20 MiB. */
  bytes(value) {
    if (value === null || value === undefined || Number.isNaN(value)) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let scaled = value;
    let unit = 0;
    while (Math.abs(scaled) >= 1024 && unit < units.length - 1) {
      scaled /= 1024;
      unit += 1;
    }
    return `${unit === 0 ? Math.round(scaled) : trim(scaled)} ${units[unit]}`;
  },
  /** Seconds as "3d 4h", "2h 5m", "4m 2s", "12s". */
  duration(seconds) {
    const s = Math.floor(seconds);
    const d = Math.floor(s / 86400);
    const hr = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (d) return `${d}d ${hr}h`;
    if (hr) return `${hr}h ${m}m`;
    if (m) return `${m}m ${s % 60}s`;
    return `${s}s`;
  },
  /** A wall-clock time (ms since the epoch) as HH:MM:SS. */
  clock(ms) {
    return new Date(ms).toLocaleTimeString('en-GB', { hour12: false });
  },
  /** A boolean as a word. */
  yes(value) {
    return value ? 'yes' : 'no';
  },
};

function trim(value) {
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return String(Number(value.toFixed(digits)));
}

/** A notice in the corner; errors stay until dismissed, others for a few seconds. */
export function toast(message, kind = 'ok') {
  const box = document.getElementById('toasts');
  const close = h('button', { type: 'button', class: 'link', 'aria-label': 'Dismiss' }, '×');
  const note = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message, close);
  close.addEventListener('click', () => note.remove());
  box.append(note);
  if (kind !== 'error') setTimeout(() => note.remove(), 4000);
}

/** Runs an action from a button or form: shows its error as a notice; resolves to success. */
export async function attempt(action, success) {
  try {
    await action();
    if (success) toast(success);
    return true;
  } catch (error) {
    toast(error instanceof ApiError ? `${error.status}: ${error.reason}` : String(error), 'error');
    return false;
  }
}

export function hasTag(tag) {
  return Boolean(state.user && state.user.tags.includes(tag));
}

/** Administrators change everything; policymakers change policies; monitoring sees all. */
export const can = {
  administer: () => hasTag('administrator'),
  makePolicies: () => hasTag('administrator') || hasTag('policymaker'),
  monitor: () => hasTag('administrator') || hasTag('monitoring'),
};

// The refresh ticker: the page registers what to redo; navigation clears it.
let refreshers = [];
let timer = null;

/** Calls `fn` on every refresh until the next navigation. */
export function onRefresh(fn) {
  refreshers.push(fn);
}

export function clearRefreshers() {
  refreshers = [];
}

/** Runs every registered refresher now (errors are shown once, not on every tick). */
export async function refreshNow() {
  for (const fn of refreshers) {
    try {
      await fn();
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) console.warn(error);
    }
  }
}

export function setRefreshInterval(ms) {
  state.refreshMs = ms;
  localStorage.setItem('hare.refreshMs', String(ms));
  if (timer) clearInterval(timer);
  timer = ms > 0 ? setInterval(() => {
    if (!document.hidden) refreshNow();
  }, ms) : null;
}

/** A page's frame: a heading and its content. */
export function page(title, ...children) {
  return h('section', { class: 'page' }, h('h1', {}, title), ...children);
}

/** A titled block inside a page. */
export function panel(title, ...children) {
  return h('section', { class: 'panel' }, h('h2', {}, title), ...children);
}

/** A definition list of label → value pairs (values: strings or nodes). */
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).flatMap(([label, value]) => [
    h('dt', {}, label),
    h('dd', {}, value === undefined || value === null || value === '' ? '–' : value),
  ]));
}

/** A field table or arguments object as "key: value" lines. */
export function describeTable(object) {
  const entries = Object.entries(object || {});
  if (!entries.length) return '–';
  return h('ul', { class: 'kv' }, entries.map(([key, value]) => h('li', {},
    h('code', {}, key), ': ', typeof value === 'object' ? JSON.stringify(value) : String(value))));
}

/** The vhosts the user may see (cached for the page's life; reloaded on navigation). */
let vhostCache = null;
export async function vhostNames() {
  if (!vhostCache) vhostCache = (await api('GET', '/api/vhosts?columns=name')).map((v) => v.name);
  return vhostCache;
}
export function forgetVhosts() {
  vhostCache = null;
}
