// Forms: labelled fields built from a description, an editor for AMQP arguments (key, value,
// type), and buttons that ask before they destroy. Every input has a `name` and every form an
// `id`, so keyboard users, screen readers and tests find them the same way.

import { attempt, h, vhostNames } from './core.js';

/**
 * Fields: `[{name, label, type?: 'text'|'password'|'number'|'select'|'textarea'|'checkbox'|
 * 'file'|'args', options?: [[value, label]], value?, required?, placeholder?, help?}]`.
 * `onSubmit(values)` runs when the form is sent (values by name; `args` fields as objects,
 * numbers as numbers, checkboxes as booleans, files as File); it may throw, and the error is
 * shown. Returns the form element.
 */
export function form({ id, fields, submit, onSubmit, success, reset = true }) {
  const editors = new Map();
  const rows = fields.map((field) => {
    const control = makeControl(field, editors);
    const inputId = `${id}-${field.name}`;
    if (control.setAttribute && !control.id) control.id = inputId;
    return h('div', { class: `field ${field.type || 'text'}` },
      h('label', { for: control.id || inputId }, field.label, field.required ? h('span', { class: 'req', 'aria-hidden': 'true' }, ' *') : null),
      control,
      field.help ? h('small', { class: 'muted' }, field.help) : null);
  });
  const button = h('button', { type: 'submit', class: 'primary' }, submit);
  const element = h('form', { id, class: 'form', novalidate: false }, rows, h('div', { class: 'actions' }, button));
  element.addEventListener('submit', async (event) => {
    event.preventDefault();
    button.disabled = true;
    const values = readValues(element, fields, editors);
    const ok = await attempt(() => onSubmit(values), success);
    button.disabled = false;
    if (ok && reset) {
      element.reset();
      for (const editor of editors.values()) editor.clear();
    }
  });
  return element;
}

function makeControl(field, editors) {
  const common = { name: field.name, required: field.required, placeholder: field.placeholder };
  switch (field.type) {
    case 'select':
      return h('select', common, (field.options || []).map(([value, label]) =>
        h('option', { value, selected: String(value) === String(field.value ?? '') }, label ?? value)));
    case 'textarea':
      return h('textarea', { ...common, rows: field.rows || 4 }, field.value ?? '');
    case 'checkbox':
      return h('input', { ...common, type: 'checkbox', checked: Boolean(field.value) });
    case 'args': {
      const editor = argsEditor(field.name, field.value, { placeholder: field.placeholder, keys: field.keys });
      editors.set(field.name, editor);
      if (!field.hints) return editor.element;
      return h('div', { class: 'args-field' }, editor.element, hintButtons(editor, field.hints));
    }
    default:
      return h('input', { ...common, type: field.type || 'text', value: field.value ?? null, step: field.type === 'number' ? 'any' : null });
  }
}

function readValues(element, fields, editors) {
  const values = {};
  for (const field of fields) {
    if (field.type === 'args') {
      values[field.name] = editors.get(field.name).value();
      continue;
    }
    const input = element.elements.namedItem(field.name);
    if (!input) continue;
    if (field.type === 'checkbox') values[field.name] = input.checked;
    else if (field.type === 'file') values[field.name] = input.files && input.files[0];
    else if (field.type === 'number') values[field.name] = input.value === '' ? undefined : Number(input.value);
    else values[field.name] = input.value;
  }
  return values;
}

/** Numbers the suggestion lists, whose ids must be unique in the page. */
let suggestionLists = 0;

/**
 * Buttons under an args editor that add a usual key with its type (`hints`:
 * `[{key, label, type?}]`), so nobody has to remember how `x-dead-letter-exchange` is spelled.
 */
function hintButtons(editor, hints) {
  return h('p', { class: 'hints' }, h('span', { class: 'muted' }, 'Add: '), hints.map(({ key, label, type }) =>
    h('button', {
      type: 'button',
      class: 'link hint',
      title: key,
      dataset: { hint: key },
      on: { click: () => editor.add(key, type) },
    }, label || key)));
}

/**
 * Rows of key, value and type (string, number, boolean, list as JSON), with a row added as
 * the last one is used. `value()` gives the arguments object; a bad number or JSON throws.
 * `add(key, type)` fills the first empty row (or a new one) and puts the cursor on its value.
 * `keys` (optional, `[{key, type, help}]`) are offered as suggestions for the name, and
 * picking one sets its type, so `max-length` is sent as a number without a second step.
 */
export function argsEditor(name, initial = {}, { placeholder, keys } = {}) {
  const body = h('tbody');
  let listId = null;
  let suggestions = null;
  if (keys && keys.length) {
    suggestionLists += 1;
    listId = `${name}-keys-${suggestionLists}`;
    suggestions = h('datalist', { id: listId },
      keys.map((k) => h('option', { value: k.key, label: k.help || null })));
  }
  const addRow = (key = '', value = '', type = 'string') => {
    const keyInput = h('input', {
      name: `${name}-key`, 'aria-label': 'Argument name', value: key,
      placeholder: placeholder || (keys && keys.length ? keys[0].key : 'x-message-ttl'), list: listId,
    });
    const row = h('tr', {},
      h('td', {}, keyInput),
      h('td', {}, h('input', { name: `${name}-value`, 'aria-label': 'Argument value', value })),
      h('td', {}, h('select', { name: `${name}-type`, 'aria-label': 'Argument type' },
        ['string', 'number', 'boolean', 'list'].map((t) => h('option', { value: t, selected: t === type }, t)))));
    row.querySelector('input').addEventListener('input', () => {
      if (row === body.lastElementChild) addRow();
      const known = keys && keys.find((k) => k.key === keyInput.value);
      if (known && known.type) row.querySelector('select').value = known.type;
    });
    body.append(row);
  };
  for (const [key, value] of Object.entries(initial || {})) {
    addRow(key, typeof value === 'object' ? JSON.stringify(value) : String(value), typeOf(value));
  }
  addRow();
  const element = h('table', { class: 'args', 'aria-label': 'Arguments' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Name', suggestions), h('th', {}, 'Value'), h('th', {}, 'Type'))), body);
  return {
    element,
    clear() {
      body.replaceChildren();
      addRow();
    },
    add(key, type = 'string') {
      let row = [...body.rows].find((r) => !r.querySelector('input').value);
      if (!row) {
        addRow();
        row = body.lastElementChild;
      }
      const [keyInput, valueInput, typeSelect] = row.querySelectorAll('input, select');
      keyInput.value = key;
      typeSelect.value = type;
      if (row === body.lastElementChild) addRow();
      valueInput.focus();
    },
    value() {
      const out = {};
      for (const row of body.rows) {
        const [key, value, type] = row.querySelectorAll('input, select');
        if (!key.value) continue;
        out[key.value] = convert(key.value, value.value, type.value);
      }
      return out;
    },
  };
}

function typeOf(value) {
  if (typeof value === 'number') return 'number';
  if (typeof value === 'boolean') return 'boolean';
  if (Array.isArray(value)) return 'list';
  return 'string';
}

function convert(key, text, type) {
  if (type === 'number') {
    const number = Number(text);
    if (text.trim() === '' || Number.isNaN(number)) throw new Error(`${key}: "${text}" is not a number`);
    return number;
  }
  if (type === 'boolean') return text === 'true' || text === '1' || text === 'yes';
  if (type === 'list') {
    try {
      return JSON.parse(text);
    } catch {
      throw new Error(`${key}: a list is written as JSON, e.g. ["a", "b"]`);
    }
  }
  return text;
}

/** A select of the vhosts the user sees, for forms (`value` preselected). */
export async function vhostField(value) {
  const names = await vhostNames();
  return { name: 'vhost', label: 'Virtual host', type: 'select', options: names.map((n) => [n, n]), value: value || names[0] };
}

/**
 * A button that asks `question` before running `action` (which may throw: the error is shown).
 * `then` runs after success (e.g. go back to the list).
 */
export function dangerButton(label, question, action, { success, then } = {}) {
  return h('button', {
    type: 'button',
    class: 'danger',
    on: {
      click: async () => {
        if (!window.confirm(question)) return;
        if (await attempt(action, success) && then) then();
      },
    },
  }, label);
}
