// Charts for BENCHMARKS.md as standalone SVG strings. Plain ESM, no dependencies.
//
// GitHub shows these through <img>, so they must stand alone: no scripts, no
// external references, no stylesheets (presentation attributes only), and a
// white background so that they read in dark mode too. Text widths are
// estimated from the character count (there is no font metrics API here), and
// every size is derived from the data so that the same input gives the same
// bytes.

const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif";
const CHAR_W = 0.6; // average glyph width of a sans-serif font, in ems
const FONT_SIZE = 12;
const VALUE_FONT_SIZE = 10;
const BAR_W = 30; // wide enough for a five-character value label above the bar
const BAR_GAP = 2;
const GROUP_PAD = 24;
const PLOT_H = 260;
const PLOT_LEFT = 70;
const RIGHT = 24;
const MIN_WIDTH = 560;
const LINE_H = 15;

/**
 * Shades per target kind, one per target of that kind in the order the
 * results list them, so that a target has the same colour in every chart.
 */
/** @type {Record<string, string[]>} */
const KIND_COLOURS = {
  comet: ['#1f6feb', '#6ea8fe', '#0a3a8c', '#a8ccff'],
  ceiling: ['#6e7781', '#afb8c1', '#424a53'],
  nchan: ['#e16f24', '#f6a45a', '#9a4400'],
  external: ['#8250df', '#c297ff', '#512a97'],
  redis: ['#cf222e', '#ff8182', '#82071e'],
  cluster: ['#1b7c83', '#3fb9c2', '#0b4f54'],
};
const OTHER_COLOURS = ['#1a7f37', '#4ac26b', '#0e4e22'];

/**
 * The colour of the index-th target of a kind ('comet', 'ceiling', 'nchan',
 * 'external', 'redis', 'cluster'; anything else is green).
 * @param {string} kind
 * @param {number} [index]
 * @returns {string}
 */
export function kindColour(kind, index = 0) {
  const shades = KIND_COLOURS[kind] ?? OTHER_COLOURS;
  return shades[index % shades.length];
}

/**
 * Escapes text for element content and double-quoted attribute values.
 * @param {unknown} s
 */
function esc(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Coordinates rounded to 0.1 px: shorter output, and no float noise that could differ between runs. */
/** @param {number} x */
function px(x) {
  return String(Math.round(x * 10) / 10);
}

/** @param {unknown} s */
function textWidth(s, size = FONT_SIZE) {
  return String(s).length * size * CHAR_W;
}

/**
 * A number in at most three significant digits with a k/M/G suffix:
 * 52100 → "52.1k", 17.94 → "17.9", 0.8 → "0.8".
 * @param {number} n
 * @returns {string}
 */
export function compact(n) {
  /** @param {number} x */
  const three = (x) => String(Number(x.toPrecision(3)));
  for (const [unit, suffix] of /** @type {const} */ ([
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'k'],
  ])) {
    // 999.6 rounds to 1.00e3 at three digits, so it belongs to the next unit up
    if (Math.abs(n) >= unit * 0.9995) return three(n / unit) + suffix;
  }
  return three(n);
}

/**
 * About five round tick values from 0 to at least max (steps of 1, 2, 2.5 or 5 × 10^k).
 * @param {number} max
 */
function ticks(max) {
  const top = max > 0 ? max : 1;
  const raw = top / 5;
  const pow = 10 ** Math.floor(Math.log10(raw));
  // 10 × pow is always at least raw
  const step = /** @type {number} */ ([1, 2, 2.5, 5, 10].map((m) => m * pow).find((s) => s >= raw));
  /** @type {number[]} */
  const out = [];
  for (let i = 0; out.length === 0 || out[out.length - 1] < top; i++) out.push(Number((i * step).toPrecision(12)));
  return out;
}

/**
 * Greedy word wrap to lines of at most maxChars (a longer word keeps its own line).
 * @param {string} label
 * @param {number} maxChars
 */
function wrap(label, maxChars) {
  /** @type {string[]} */
  const lines = [];
  for (const word of String(label).split(/\s+/).filter(Boolean)) {
    const last = lines.length - 1;
    if (last >= 0 && lines[last].length + 1 + word.length <= maxChars) lines[last] += ' ' + word;
    else lines.push(word);
  }
  return lines.length ? lines : [''];
}

/**
 * @param {number} x
 * @param {number} y
 * @param {unknown} s
 */
function text(x, y, s, attrs = '') {
  return `<text x="${px(x)}" y="${px(y)}"${attrs}>${esc(s)}</text>`;
}

/**
 * Legend items laid out left to right, wrapping at width; returns the SVG and its height.
 * @param {{ name: string, colour: string }[]} items
 * @param {number} top
 * @param {number} width
 */
function legend(items, top, width) {
  const parts = [];
  let x = PLOT_LEFT;
  let y = top;
  for (const { name, colour } of items) {
    const w = 12 + 6 + textWidth(name) + 18;
    if (x + w > width - RIGHT && x > PLOT_LEFT) {
      x = PLOT_LEFT;
      y += LINE_H + 3;
    }
    parts.push(`<rect x="${px(x)}" y="${px(y - 10)}" width="12" height="12" fill="${colour}"/>`);
    parts.push(text(x + 18, y, name));
    x += w;
  }
  return { svg: parts.join('\n'), height: items.length ? y - top + LINE_H + 3 : 0 };
}

/**
 * @param {number[]} tickValues
 * @param {(v: number) => number} scale
 * @param {number} plotTop
 * @param {number} plotRight
 * @param {string} unit
 */
function yAxis(tickValues, scale, plotTop, plotRight, unit) {
  const parts = tickValues.map((v) => {
    const y = scale(v);
    return [
      `<line x1="${PLOT_LEFT}" y1="${px(y)}" x2="${px(plotRight)}" y2="${px(y)}" stroke="${v === 0 ? '#57606a' : '#d0d7de'}" stroke-width="1"/>`,
      text(PLOT_LEFT - 6, y + 4, compact(v), ' text-anchor="end"'),
    ].join('\n');
  });
  const mid = plotTop + PLOT_H / 2;
  parts.push(text(16, mid, unit, ` text-anchor="middle" transform="rotate(-90 16 ${px(mid)})"`));
  return parts.join('\n');
}

/**
 * A thin vertical line from min to max with short caps.
 * @param {number} cx
 * @param {number} yMin
 * @param {number} yMax
 */
function whisker(cx, yMin, yMax) {
  return [
    `<line x1="${px(cx)}" y1="${px(yMin)}" x2="${px(cx)}" y2="${px(yMax)}" stroke="#24292f" stroke-width="1"/>`,
    `<line x1="${px(cx - 4)}" y1="${px(yMin)}" x2="${px(cx + 4)}" y2="${px(yMin)}" stroke="#24292f" stroke-width="1"/>`,
    `<line x1="${px(cx - 4)}" y1="${px(yMax)}" x2="${px(cx + 4)}" y2="${px(yMax)}" stroke="#24292f" stroke-width="1"/>`,
  ].join('\n');
}

/**
 * @param {RefLine} refLine
 * @param {(v: number) => number} scale
 * @param {number} plotRight
 */
function refLineSvg({ value, label }, scale, plotRight) {
  const y = scale(value);
  return [
    `<line x1="${PLOT_LEFT}" y1="${px(y)}" x2="${px(plotRight)}" y2="${px(y)}" stroke="#cf222e" stroke-width="1.5" stroke-dasharray="6 4"/>`,
    text(plotRight - 4, y - 5, label, ' text-anchor="end" fill="#cf222e"'),
  ].join('\n');
}

/** @param {unknown} v @returns {v is number} */
const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

/**
 * @typedef {{ name: string, values: (number|null)[], min?: (number|null)[], max?: (number|null)[], colour?: string }} Series
 * @typedef {{ value: number, label: string }} RefLine
 */

/**
 * Grouped vertical bars: one group per entry of `groups`, one bar per series
 * in each group; a null value leaves its bar out. Each bar carries its value
 * (compact form) and, where min and max differ, a min–max whisker.
 * @param {object} spec
 * @param {string} spec.title
 * @param {string} spec.unit y axis label
 * @param {string[]} spec.groups x labels (wrapped at spaces to fit their group)
 * @param {Series[]} spec.series
 * @param {RefLine} [spec.refLine] dashed horizontal reference line
 * @returns {string} an SVG 1.1 document
 */
export function barChart({ title, unit, groups, series, refLine }) {
  const colours = series.map((s, i) => s.colour ?? OTHER_COLOURS[i % OTHER_COLOURS.length]);
  const barsW = series.length * (BAR_W + BAR_GAP) - BAR_GAP;
  const longestWord = Math.max(0, ...groups.flatMap((g) => String(g).split(/\s+/)).map((w) => textWidth(w)));
  const minWidth = Math.max(MIN_WIDTH, PLOT_LEFT + textWidth(title, 15) + RIGHT);
  // groups share out any width the title or the minimum leaves over, so that the plot has no empty right side
  const groupW = Math.max(Math.max(barsW, longestWord) + GROUP_PAD, (minWidth - PLOT_LEFT - RIGHT) / Math.max(1, groups.length));
  const width = Math.round(PLOT_LEFT + groups.length * groupW + RIGHT);
  const plotRight = width - RIGHT;

  const lg = legend(
    series.map((s, i) => ({ name: s.name, colour: colours[i] })),
    48,
    width,
  );
  // room above the highest bar for its value label
  const plotTop = 48 + lg.height + 24;
  const xLines = groups.map((g) => wrap(g, Math.floor((groupW - 6) / (FONT_SIZE * CHAR_W))));
  const height = Math.round(plotTop + PLOT_H + 14 + Math.max(1, ...xLines.map((l) => l.length)) * LINE_H + 10);

  const all = series.flatMap((s) => [...s.values, ...(s.max ?? [])]).filter(isNum);
  const tickValues = ticks(Math.max(0, ...all, refLine?.value ?? 0));
  const yTop = tickValues[tickValues.length - 1];
  /** @param {number} v */
  const scale = (v) => plotTop + PLOT_H - (v / yTop) * PLOT_H;

  const parts = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${esc(FONT)}" font-size="${FONT_SIZE}" fill="#24292f">`,
    `<title>${esc(title)}</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    text(PLOT_LEFT, 26, title, ' font-size="15" font-weight="bold"'),
    lg.svg,
    yAxis(tickValues, scale, plotTop, plotRight, unit),
  ];
  groups.forEach((_, g) => {
    const left = PLOT_LEFT + g * groupW + (groupW - barsW) / 2;
    series.forEach((s, i) => parts.push(bar(s, g, left + i * (BAR_W + BAR_GAP), colours[i], scale)));
    const cx = PLOT_LEFT + (g + 0.5) * groupW;
    xLines[g].forEach((line, l) => parts.push(text(cx, plotTop + PLOT_H + 18 + l * LINE_H, line, ' text-anchor="middle"')));
  });
  if (refLine) parts.push(refLineSvg(refLine, scale, plotRight));
  parts.push('</svg>', '');
  return parts.filter(Boolean).join('\n');
}

/**
 * One bar of a series in group g, with its whisker and value label; '' when the value is missing.
 * @param {Series} s
 * @param {number} g
 * @param {number} x
 * @param {string} colour
 * @param {(v: number) => number} scale
 */
function bar(s, g, x, colour, scale) {
  const v = s.values[g];
  if (!isNum(v)) return '';
  const y = scale(Math.max(0, v));
  const base = scale(0);
  const out = [`<rect x="${px(x)}" y="${px(y)}" width="${BAR_W}" height="${px(base - y)}" fill="${colour}"/>`];
  const lo = s.min?.[g];
  const hi = s.max?.[g];
  const spread = isNum(lo) && isNum(hi) && hi > lo;
  if (spread) out.push(whisker(x + BAR_W / 2, scale(lo), scale(hi)));
  const labelY = Math.min(y, spread ? scale(hi) : y) - 4;
  out.push(text(x + BAR_W / 2, labelY, compact(v), ` text-anchor="middle" font-size="${VALUE_FONT_SIZE}"`));
  return out.join('\n');
}
