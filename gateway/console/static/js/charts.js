// Time-series charts over uPlot (vendored, served from this origin). A chart keeps its uPlot
// instance while its series stay the same and only swaps the data on each poll.
import uPlot from "../vendor/uPlot.esm.js";

const COLORS = ["#2457d6", "#d6452a", "#1b7f4b", "#a86400", "#7a3fc0", "#0f8a9c", "#b8328f", "#5b6478"];

export function color(i) {
  return COLORS[i % COLORS.length];
}

export class TimeChart {
  /**
   * @param {HTMLElement} el where the chart goes
   * @param {{format?: (v: number) => string, stepped?: boolean, height?: number, min?: number, max?: number, pad?: number, thresholds?: Array<{label: string, value: number}>}} options
   */
  constructor(el, options = {}) {
    this.el = el;
    this.options = options;
    this.plot = null;
    this.key = "";
  }

  /** ``xs``: unix seconds; ``series``: [{label, values}] aligned with ``xs`` (nulls allowed). */
  update(xs, series) {
    const thresholds = this.options.thresholds || [];
    const all = [...series, ...thresholds.map((t) => ({ label: t.label, values: xs.map(() => t.value), dashed: true }))];
    const key = all.map((s) => s.label).join("|");
    const data = [xs, ...all.map((s) => s.values)];
    if (this.plot && key === this.key) {
      this.plot.setData(data);
      return;
    }
    if (this.plot) this.plot.destroy();
    this.key = key;
    const format = this.options.format || ((v) => String(v));
    const stepped = this.options.stepped ? uPlot.paths.stepped({ align: 1 }) : undefined;
    const opts = {
      width: Math.max(320, this.el.clientWidth || 600),
      height: this.options.height || 220,
      // one x value alone gets half a day on each side (uPlot would otherwise span years)
      scales: { x: { time: true, range: (u) => xRange(u.data[0], this.options.pad ?? 43200) }, y: { range: (u, lo, hi) => [this.options.min ?? Math.min(0, lo ?? 0), this.options.max ?? (hi > 0 ? hi * 1.1 : 1)] } },
      axes: [{}, { values: (u, ticks) => ticks.map(format), size: 70 }],
      series: [
        {},
        ...all.map((s, i) => ({
          label: s.label,
          stroke: s.dashed ? "#c0322b" : color(i),
          width: s.dashed ? 1 : 2,
          dash: s.dashed ? [6, 4] : undefined,
          paths: s.dashed ? undefined : stepped,
          spanGaps: false,
          value: (u, v) => (v === null || v === undefined ? "–" : format(v)),
        })),
      ],
    };
    this.plot = new uPlot(opts, data, this.el);
  }
}

/** The x scale: the data's first to last time; one time alone (or none) gets ``pad`` seconds
 * on each side. */
function xRange(xs, pad) {
  if (!xs || xs.length === 0) {
    const now = Date.now() / 1000;
    return [now - pad, now + pad];
  }
  const lo = xs[0];
  const hi = xs[xs.length - 1];
  return lo === hi ? [lo - pad, hi + pad] : [lo, hi];
}

/** Align series that each have their own time axis onto the union of their times. */
export function align(rows, pick) {
  const times = [...new Set(rows.flatMap((r) => r.t))].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const series = rows.map((r) => {
    const values = times.map(() => null);
    r.t.forEach((t, i) => {
      values[index.get(t)] = pick(r)[i] ?? null;
    });
    return values;
  });
  return { times, series };
}
