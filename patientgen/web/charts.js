// Small inline-SVG charts drawn by hand: stacked columns (per day, histograms) and stacked
// horizontal bars (categories). Each chart is a <figure> with an accessible name, an HTML legend
// and its data as a table, and is drawn at the pixel width of its container so text stays legible.

const SVG_NS = "http://www.w3.org/2000/svg";
let chartId = 0;

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  }
  if (text !== undefined) node.textContent = text;
  return node;
}

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

const fmt = new Intl.NumberFormat("en-GB");
export const formatNumber = (n) => fmt.format(n);

// A round step for about `count` grid lines up to `max`: 1, 2, 2.5 or 5 times a power of ten.
function niceScale(max, count = 4) {
  if (max <= 0) return { max: 1, step: 0.25 };
  const raw = max / count;
  const exp = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * exp).find((s) => s >= raw);
  return { max: step * Math.ceil(max / step - 1e-9), step };
}

const tickText = (v) => (v >= 1000 ? `${Number((v / 1000).toFixed(2))}k` : String(Number(v.toFixed(2))));

const textWidth = (s, px = 12) => String(s).length * px * 0.58 + 4;

function figure(title, description, svg, legend, table) {
  const id = `chart-${++chartId}`;
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-labelledby", `${id}-title`);
  if (description) svg.setAttribute("aria-description", description);
  return h("figure", { class: "chart" },
    h("figcaption", { id: `${id}-title`, class: "chart-title", text: title }),
    svg,
    legend,
    h("details", { class: "chart-data" }, h("summary", { text: "Show data as a table" }), table));
}

function legendOf(series) {
  if (series.length < 2) return null;
  return h("ul", { class: "legend" },
    series.map((s, i) =>
      h("li", {}, h("span", { class: `swatch s${s.color ?? i}`, "aria-hidden": "true" }), s.name)));
}

// A data table: a header row, then rows whose first cell heads the row.
export function tableOf(headers, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, rows.map((r) =>
      h("tr", {}, r.map((c, i) => (i === 0 ? h("th", { scope: "row", text: c }) : h("td", { text: c })))))));
}

// Stacked columns. labels: x labels; series: [{name, values[], color?}].
export function columnChart({ title, description, labels, series, width, height = 220, xTitle }) {
  width = Math.max(280, Math.floor(width));
  const m = { left: 48, right: 10, top: 12, bottom: xTitle ? 44 : 28 };
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const n = Math.max(1, labels.length);
  const totals = labels.map((_, i) => series.reduce((a, s) => a + (s.values[i] || 0), 0));
  const scale = niceScale(Math.max(0, ...totals));
  const max = scale.max;
  const y = (v) => m.top + ph - (v / max) * ph;
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart-svg",
    "data-points": n, "data-total": totals.reduce((a, b) => a + b, 0) });
  svg.append(svgEl("title", {}, title));
  for (let v = 0; v <= max + 1e-9; v += scale.step) {
    svg.append(svgEl("line", { x1: m.left, x2: width - m.right, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(svgEl("text", { x: m.left - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" },
      tickText(v)));
  }
  const band = pw / n;
  const bw = band > 4 ? band * 0.8 : band;
  const bars = svgEl("g", { class: "bars" });
  labels.forEach((lab, i) => {
    let acc = 0;
    series.forEach((s, si) => {
      const v = s.values[i] || 0;
      if (v <= 0) return;
      const rect = svgEl("rect", {
        x: (m.left + i * band + (band - bw) / 2).toFixed(2), y: y(acc + v).toFixed(2),
        width: Math.max(0.5, bw).toFixed(2), height: Math.max(0.5, y(acc) - y(acc + v)).toFixed(2),
        class: `bar s${s.color ?? si}`, "data-value": v,
      });
      rect.append(svgEl("title", {}, `${lab}: ${s.name} ${formatNumber(v)}`));
      bars.append(rect);
      acc += v;
    });
  });
  svg.append(bars);
  const every = Math.max(1, Math.ceil((n * Math.max(...labels.map((l) => textWidth(l)), 10)) / pw));
  labels.forEach((lab, i) => {
    if (i % every !== 0) return;
    // Keep the labels at both ends inside the drawing.
    const cx = m.left + i * band + band / 2;
    const half = textWidth(lab) / 2;
    let anchor = "middle";
    let x = cx;
    if (cx + half > width - 2) {
      anchor = "end";
      x = width - 2;
    } else if (cx - half < 2) {
      anchor = "start";
      x = 2;
    }
    svg.append(svgEl("text", { x, y: m.top + ph + 16, class: "tick", "text-anchor": anchor }, lab));
  });
  svg.append(svgEl("line", { x1: m.left, x2: width - m.right, y1: m.top + ph, y2: m.top + ph, class: "axis" }));
  if (xTitle) {
    svg.append(svgEl("text", { x: m.left + pw / 2, y: height - 6, class: "axis-title",
      "text-anchor": "middle" }, xTitle));
  }
  const headers = [xTitle || "", ...series.map((s) => s.name)];
  if (series.length > 1) headers.push("Total");
  const rows = labels.map((lab, i) => {
    const r = [lab, ...series.map((s) => formatNumber(s.values[i] || 0))];
    if (series.length > 1) r.push(formatNumber(totals[i]));
    return r;
  });
  return figure(title, description, svg, legendOf(series), tableOf(headers, rows));
}

// Stacked horizontal bars. rows: [{label, values[]}] aligned with series [{name, color?}].
// normalise: every row spans the full width (each part its share of the row), so small rows stay
// readable next to big ones; the row's count is written at its end.
export function barChart({ title, description, rows, series, width, valueSuffix = "", normalise = false, note }) {
  width = Math.max(280, Math.floor(width));
  const rowH = 24;
  const m = { top: 6, bottom: 6, right: 64 };
  const labelW = Math.min(width * 0.4, Math.max(...rows.map((r) => textWidth(r.label)), 30));
  const left = labelW + 8;
  const pw = width - left - m.right;
  const height = m.top + m.bottom + rows.length * rowH;
  const totals = rows.map((r) => r.values.reduce((a, b) => a + (b || 0), 0));
  const max = Math.max(1, ...totals);
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart-svg",
    "data-points": rows.length, "data-total": totals.reduce((a, b) => a + b, 0),
    "data-scale": normalise ? "share" : "count" });
  svg.append(svgEl("title", {}, title));
  rows.forEach((r, i) => {
    const yTop = m.top + i * rowH;
    const label = svgEl("text", { x: labelW, y: yTop + rowH / 2 + 4, class: "label", "text-anchor": "end" },
      r.label);
    svg.append(label);
    let acc = 0;
    const scale = normalise ? Math.max(1, totals[i]) : max;
    r.values.forEach((v, si) => {
      if (!v || v <= 0) return;
      const x = left + (acc / scale) * pw;
      const w = Math.max(0.5, (v / scale) * pw);
      const rect = svgEl("rect", { x: x.toFixed(2), y: yTop + 4, width: w.toFixed(2), height: rowH - 8,
        class: `bar s${series[si]?.color ?? si}`, "data-value": v });
      const share = normalise ? ` (${Number(((100 * v) / scale).toFixed(1))}\u00a0%)` : "";
      rect.append(svgEl("title", {}, `${r.label}: ${series[si]?.name ?? ""} ${formatNumber(v)}${valueSuffix}${share}`));
      svg.append(rect);
      acc += v;
    });
    svg.append(svgEl("text", { x: left + (acc / scale) * pw + 4, y: yTop + rowH / 2 + 4, class: "value" },
      `${formatNumber(totals[i])}${valueSuffix}`));
  });
  const headers = ["", ...series.map((s) => s.name)];
  if (series.length > 1) headers.push("Total");
  const share = (v, i) => (normalise && totals[i] ? ` (${Number(((100 * (v || 0)) / totals[i]).toFixed(1))}\u00a0%)` : "");
  const tableRows = rows.map((r, i) => {
    const cells = [r.label, ...r.values.map((v) => `${formatNumber(v || 0)}${share(v, i)}`)];
    if (series.length > 1) cells.push(formatNumber(totals[i]));
    return cells;
  });
  const fig = figure(title, description, svg, legendOf(series), tableOf(headers, tableRows));
  if (note) fig.querySelector("figcaption").after(h("p", { class: "chart-note", text: note }));
  return fig;
}
