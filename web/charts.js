// Small SVG charts drawn here: no chart library, nothing loaded from elsewhere.
// Colours come from CSS classes, so light and dark themes both read well.
import { h, s } from './dom.js';

const W = 320;
const H = 110;
const PAD = { l: 30, r: 6, t: 8, b: 18 };

/**
 * A per-minute line chart of one series. `minutes` is GetPoolStats'
 * list (60, oldest first); `field` the count to draw.
 */
export function minuteChart(title, minutes, field, cls) {
  const values = minutes.map((m) => Number(m[field] || 0));
  const total = values.reduce((a, b) => a + b, 0);
  const max = Math.max(1, ...values);
  const iw = W - PAD.l - PAD.r;
  const ih = H - PAD.t - PAD.b;
  const x = (i) => PAD.l + (values.length > 1 ? (i * iw) / (values.length - 1) : 0);
  const y = (v) => PAD.t + ih - (v * ih) / max;
  const line = values.map((v, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join('');
  const area = `${line}L${x(values.length - 1).toFixed(1)},${PAD.t + ih}L${PAD.l},${PAD.t + ih}Z`;
  const peak = values.indexOf(max);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: `chart ${cls}`, role: 'img', 'aria-label': `${title}: ${total} in the last hour, at most ${max === 1 && !total ? 0 : max} in a minute` },
    s('line', { x1: PAD.l, y1: PAD.t + ih, x2: W - PAD.r, y2: PAD.t + ih, class: 'axis' }),
    s('line', { x1: PAD.l, y1: PAD.t, x2: W - PAD.r, y2: PAD.t, class: 'grid' }),
    s('text', { x: PAD.l - 4, y: PAD.t + 4, class: 'tick', 'text-anchor': 'end' }, String(total ? max : 0)),
    s('text', { x: PAD.l - 4, y: PAD.t + ih + 3, class: 'tick', 'text-anchor': 'end' }, '0'),
    s('text', { x: PAD.l, y: H - 3, class: 'tick' }, '−60 min'),
    s('text', { x: W - PAD.r, y: H - 3, class: 'tick', 'text-anchor': 'end' }, 'now'),
    s('path', { d: area, class: 'area' }),
    s('path', { d: line, class: 'line' }),
    total ? s('circle', { cx: x(peak), cy: y(max), r: 2.5, class: 'dot' }) : null);
  return h('figure.chart-box', {}, h('figcaption', {}, h('span', {}, title), h('strong', {}, String(total))), svg);
}

export const STATES = [
  ['healthy', 'Healthy'],
  ['unhealthy', 'Unhealthy'],
  ['coolingDown', 'Cooling down'],
  ['disabled', 'Disabled'],
];

/** The split of sessions by state as one stacked bar with a legend. */
export function stateSplit(counts = {}) {
  const n = STATES.map(([k]) => Number(counts[k] || 0));
  const total = n.reduce((a, b) => a + b, 0);
  let at = 0;
  const bars = STATES.map(([k], i) => {
    const w = total ? (n[i] * W) / total : 0;
    const r = s('rect', { x: at.toFixed(2), y: 0, width: w.toFixed(2), height: 16, class: `st-${k}` });
    at += w;
    return r;
  });
  const label = STATES.map(([, name], i) => `${name} ${n[i]}`).join(', ');
  return h('figure.chart-box', {},
    h('figcaption', {}, h('span', {}, 'Sessions by state'), h('strong', {}, String(total))),
    s('svg', { viewBox: `0 0 ${W} 16`, class: 'split', role: 'img', 'aria-label': label, preserveAspectRatio: 'none' },
      total ? bars : s('rect', { x: 0, y: 0, width: W, height: 16, class: 'st-empty' })),
    h('ul.legend', {}, STATES.map(([k, name], i) => h('li', {}, h(`span.sw.st-${k}`, { 'aria-hidden': 'true' }), `${name} `, h('b', {}, String(n[i]))))));
}
