// Small hand-written SVG charts for the leaderboard page (no third-party code).
// Charts.bars(svg, items): horizontal bars with confidence-interval whiskers.
// Charts.lines(svg, series): line chart over steps, with an optional ±std band per series.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];

  function el(tag, attrs, parent) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function clear(svg) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
  }

  function size(svg) {
    const box = svg.getBoundingClientRect();
    return { w: Math.max(box.width, 200), h: Math.max(box.height, 120) };
  }

  // "Nice" tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten.
  function ticks(lo, hi, count) {
    if (!(hi > lo)) { hi = lo + 1; }
    const raw = (hi - lo) / Math.max(count, 1);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const out = [];
    for (let t = Math.floor(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(+t.toFixed(12));
    return out;
  }

  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
    return (+v.toPrecision(4)).toString();
  }

  function message(svg, text) {
    clear(svg);
    const { w, h } = size(svg);
    el("text", { x: w / 2, y: h / 2, "text-anchor": "middle", fill: "#6b7280" }, svg).textContent = text;
  }

  // items: [{label, value, low?, high?}], best first.
  function bars(svg, items) {
    clear(svg);
    if (!items.length) { message(svg, "no data"); return; }
    const { w, h } = size(svg);
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    const left = Math.min(180, w * 0.3), right = 20, top = 10, bottom = 28;
    const vals = items.flatMap((d) => [d.value, d.low, d.high]).filter((v) => v !== null && v !== undefined);
    let lo = Math.min(0, ...vals), hi = Math.max(...vals);
    if (hi === lo) hi = lo + 1;
    const tk = ticks(lo, hi, 5);
    lo = Math.min(lo, tk[0]); hi = Math.max(hi, tk[tk.length - 1]);
    const x = (v) => left + ((v - lo) / (hi - lo)) * (w - left - right);
    const band = (h - top - bottom) / items.length;
    for (const t of tk) {
      el("line", { x1: x(t), x2: x(t), y1: top, y2: h - bottom, stroke: "#e5e7eb" }, svg);
      el("text", { x: x(t), y: h - bottom + 16, "text-anchor": "middle", "font-size": 11, fill: "#6b7280" }, svg).textContent = fmt(t);
    }
    items.forEach((d, i) => {
      const y = top + i * band, bh = Math.max(Math.min(band * 0.6, 28), 2), cy = y + band / 2;
      el("text", { x: left - 8, y: cy + 4, "text-anchor": "end", "font-size": 12, fill: "#1d2330" }, svg).textContent = d.label;
      const x0 = x(Math.max(lo, 0)), x1 = x(d.value);
      el("rect", { x: Math.min(x0, x1), y: cy - bh / 2, width: Math.max(Math.abs(x1 - x0), 1), height: bh,
                   fill: PALETTE[i % PALETTE.length], "fill-opacity": 0.85, class: "bar" }, svg);
      if (d.low !== null && d.low !== undefined && d.high !== null && d.high !== undefined) {
        const g = el("g", { stroke: "#111827", "stroke-width": 1.5, class: "whisker" }, svg);
        el("line", { x1: x(d.low), x2: x(d.high), y1: cy, y2: cy }, g);
        el("line", { x1: x(d.low), x2: x(d.low), y1: cy - bh / 3, y2: cy + bh / 3 }, g);
        el("line", { x1: x(d.high), x2: x(d.high), y1: cy - bh / 3, y2: cy + bh / 3 }, g);
      }
    });
  }

  // series: [{name, steps: [...], values: [...], std?: [...]}]
  function lines(svg, series) {
    clear(svg);
    series = series.filter((s) => s.steps.length);
    if (!series.length) { message(svg, "no data"); return; }
    const { w, h } = size(svg);
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    const left = 52, right = 12, top = 10, bottom = 50;
    const steps = series.flatMap((s) => s.steps);
    const ys = series.flatMap((s) => s.values.flatMap((v, i) => (s.std ? [v - s.std[i], v + s.std[i]] : [v])));
    let x0 = Math.min(...steps), x1 = Math.max(...steps);
    if (x1 === x0) x1 = x0 + 1;
    let y0 = Math.min(...ys), y1 = Math.max(...ys);
    if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
    const ty = ticks(y0, y1, 4), tx = ticks(x0, x1, 6);
    y0 = Math.min(y0, ty[0]); y1 = Math.max(y1, ty[ty.length - 1]);
    const X = (v) => left + ((v - x0) / (x1 - x0)) * (w - left - right);
    const Y = (v) => h - bottom - ((v - y0) / (y1 - y0)) * (h - top - bottom);
    for (const t of ty) {
      el("line", { x1: left, x2: w - right, y1: Y(t), y2: Y(t), stroke: "#e5e7eb" }, svg);
      el("text", { x: left - 6, y: Y(t) + 4, "text-anchor": "end", "font-size": 11, fill: "#6b7280" }, svg).textContent = fmt(t);
    }
    for (const t of tx) {
      if (t < x0 || t > x1) continue;
      el("text", { x: X(t), y: h - bottom + 15, "text-anchor": "middle", "font-size": 11, fill: "#6b7280" }, svg).textContent = fmt(t);
    }
    el("text", { x: w - right, y: h - bottom + 15, "text-anchor": "end", "font-size": 10, fill: "#9ca3af" }, svg).textContent = "step";
    series.forEach((s, k) => {
      const color = PALETTE[k % PALETTE.length];
      if (s.std) {
        const upper = s.steps.map((t, i) => `${X(t)},${Y(s.values[i] + s.std[i])}`);
        const lower = s.steps.map((t, i) => `${X(t)},${Y(s.values[i] - s.std[i])}`).reverse();
        el("polygon", { points: upper.concat(lower).join(" "), fill: color, "fill-opacity": 0.18, stroke: "none", class: "band" }, svg);
      }
      const pts = s.steps.map((t, i) => `${X(t)},${Y(s.values[i])}`).join(" ");
      el("polyline", { points: pts, fill: "none", stroke: color, "stroke-width": 2, class: "line" }, svg);
      if (s.steps.length === 1) el("circle", { cx: X(s.steps[0]), cy: Y(s.values[0]), r: 3, fill: color }, svg);
      const lx = left + (k % 3) * ((w - left) / 3), ly = h - 16 + Math.floor(k / 3) * 12;
      el("rect", { x: lx, y: ly - 8, width: 10, height: 10, fill: color }, svg);
      el("text", { x: lx + 14, y: ly + 1, "font-size": 11, fill: "#1d2330" }, svg).textContent = s.name;
    });
  }

  return { bars, lines, ticks, fmt };
})();
