// Line charts in SVG, drawn by this file alone: a time axis, a value axis in human units, one
// line per series, and a legend that also reads out the latest values (for screen readers,
// and so that a test can read what the chart shows).
//
// Colours are the Okabe–Ito palette (its yellow, too pale on white, replaced by grey), which stays distinguishable with the common forms of
// colour blindness; each series also has its own dash pattern, so a grey print still works.

import { fmt, h } from './core.js';

const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#000000', '#7F7F7F'];
const DASHES = ['', '6 3', '2 3', '8 3 2 3', '1 2', '10 4', '4 4', '3 6'];

const WIDTH = 640;
const MARGIN = { top: 10, right: 12, bottom: 22, left: 56 };

/**
 * A chart of `series` (`[{key, label}]`) over the last `windowMs`. `format` renders values
 * (axis and legend). Returns `{element, update(points)}` where points are
 * `[{t: ms since epoch, values: {key: number}}]`, oldest first.
 */
export function lineChart({ title, series, format = fmt.rate, height = 170, windowMs = 10 * 60 * 1000 }) {
  const svg = h('svg:svg', {
    viewBox: `0 0 ${WIDTH} ${height}`,
    class: 'chart-plot',
    role: 'img',
    'aria-label': title,
  });
  const legend = h('ul', { class: 'legend' });
  const element = h('figure', { class: 'chart', dataset: { chart: title } },
    h('figcaption', {}, title), svg, legend);
  const chart = { element, update: (points) => draw(svg, legend, points, { series, format, height, windowMs }) };
  chart.update([]);
  return chart;
}

function draw(svg, legend, points, { series, format, height, windowMs: fullWindowMs }) {
  svg.replaceChildren();
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const end = points.length ? points[points.length - 1].t : Date.now();
  // A chart with a minute of history spreads that minute over its width rather than
  // squeezing it into the right edge of the full window; it widens as history grows.
  const span = points.length ? end - points[0].t : 0;
  const windowMs = Math.max(Math.min(fullWindowMs, span), Math.min(fullWindowMs, 60 * 1000));
  const start = end - windowMs;
  const shown = points.filter((p) => p.t >= start);
  let max = 0;
  for (const p of shown) {
    for (const s of series) max = Math.max(max, p.values[s.key] || 0);
  }
  const ticks = niceTicks(max);
  const top = ticks[ticks.length - 1] || 1;
  const x = (t) => MARGIN.left + ((t - start) / windowMs) * plotW;
  const y = (v) => MARGIN.top + plotH - (v / top) * plotH;

  for (const tick of ticks) {
    svg.append(h('svg:line', { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(tick), y2: y(tick), class: 'grid' }));
    svg.append(h('svg:text', { x: MARGIN.left - 6, y: y(tick) + 4, class: 'axis', 'text-anchor': 'end' }, format(tick)));
  }
  const { step, ticks: times } = timeTicks(start, end, windowMs);
  for (const t of times) {
    // Whole minutes read as HH:MM; steps under a minute need their seconds.
    const label = step < 60e3 ? fmt.clock(t) : fmt.clock(t).slice(0, 5);
    svg.append(h('svg:text', { x: x(t), y: height - 6, class: 'axis', 'text-anchor': 'middle' }, label));
  }
  series.forEach((s, index) => {
    const path = linePath(shown, s.key, x, y);
    if (path) {
      svg.append(h('svg:path', {
        d: path,
        class: 'line',
        stroke: PALETTE[index % PALETTE.length],
        'stroke-dasharray': DASHES[index % DASHES.length] || null,
        dataset: { series: s.key },
      }));
    }
  });
  if (!shown.length) {
    svg.append(h('svg:text', { x: WIDTH / 2, y: height / 2, class: 'axis empty', 'text-anchor': 'middle' }, 'Waiting for samples…'));
  }
  const latest = shown[shown.length - 1];
  legend.replaceChildren(...series.map((s, index) => {
    const value = latest ? latest.values[s.key] : undefined;
    return h('li', { dataset: { series: s.key, latest: value === undefined ? '' : String(value) } },
      swatch(index), `${s.label} `, h('strong', {}, value === undefined ? '–' : format(value)));
  }));
}

/** A small line sample in the series' colour and dash, for the legend. */
function swatch(index) {
  return h('svg:svg', { viewBox: '0 0 24 8', width: 24, height: 8, class: 'swatch', 'aria-hidden': 'true' },
    h('svg:line', {
      x1: 0, x2: 24, y1: 4, y2: 4,
      stroke: PALETTE[index % PALETTE.length],
      'stroke-width': 3,
      'stroke-dasharray': DASHES[index % DASHES.length] || null,
    }));
}

/** The path through the points that have a value for `key` (gaps break the line). */
function linePath(points, key, x, y) {
  let d = '';
  let pen = 'M';
  for (const p of points) {
    const v = p.values[key];
    if (v === undefined || v === null || Number.isNaN(v)) {
      pen = 'M';
      continue;
    }
    d += `${pen}${x(p.t).toFixed(1)},${y(Math.max(0, v)).toFixed(1)}`;
    pen = 'L';
  }
  return d;
}

/** Up to five round steps from zero that cover `max` (1, 2 or 5 times a power of ten). */
export function niceTicks(max) {
  if (!(max > 0)) return [0, 1];
  const rough = max / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough);
  const ticks = [];
  for (let v = 0; v < max + step; v += step) ticks.push(v);
  return ticks;
}

/** Times for the time axis, about five, and the step between them. */
function timeTicks(start, end, windowMs) {
  const steps = [10e3, 30e3, 60e3, 120e3, 300e3, 600e3, 1800e3, 3600e3];
  const step = steps.find((s) => windowMs / s <= 6) || 3600e3;
  const ticks = [];
  for (let t = Math.ceil(start / step) * step; t <= end; t += step) ticks.push(t);
  return { step, ticks };
}

/**
 * Rates from RabbitMQ-style counter samples (`[{timestamp, sample}]`, newest first, as the
 * API's `*_details.samples`): one point per pair of neighbours.
 */
export function ratesFromSamples(samples) {
  const oldestFirst = [...(samples || [])].reverse();
  const rates = [];
  for (let i = 1; i < oldestFirst.length; i += 1) {
    const a = oldestFirst[i - 1];
    const b = oldestFirst[i];
    const seconds = (b.timestamp - a.timestamp) / 1000;
    if (seconds > 0) rates.push({ t: b.timestamp, v: Math.max(0, (b.sample - a.sample) / seconds) });
  }
  return rates;
}

/** Levels from samples (queue lengths): one point per sample, oldest first. */
export function levelsFromSamples(samples) {
  return [...(samples || [])].reverse().map((s) => ({ t: s.timestamp, v: s.sample }));
}

/** Joins several `{key: [{t, v}]}` series into chart points (matched by time). */
export function joinSeries(byKey) {
  const times = new Map();
  for (const [key, values] of Object.entries(byKey)) {
    for (const { t, v } of values) {
      if (!times.has(t)) times.set(t, { t, values: {} });
      times.get(t).values[key] = v;
    }
  }
  return [...times.values()].sort((a, b) => a.t - b.t);
}

/**
 * A history kept by the page itself, for objects whose samples the API does not keep (a
 * queue, a connection): call `add(values)` on each refresh; `points` for the chart.
 */
export class History {
  constructor(windowMs = 10 * 60 * 1000) {
    this.windowMs = windowMs;
    this.points = [];
  }

  add(values, t = Date.now()) {
    this.points.push({ t, values });
    while (this.points.length && this.points[0].t < t - this.windowMs) this.points.shift();
    return this.points;
  }
}
