// Training curves with uPlot (vendored, /static/vendor/uplot): one panel per metric, every
// selected job overlaid, an integer step axis, axis titles, the legend under the plot with
// the hovered values, cursors synchronised across panels, and EMA smoothing.

import { $, api, clear, el, fmt, getState, setState } from "./core.js";

const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f"];
const GROUPS = [
  ["reward", (n) => /^reward$|(^|\/)reward(s)?(\/|_service\/)?mean$|^reward\/mean$/.test(n)],
  ["reward components", (n) => /component\//.test(n)],
  ["zero-variance fraction", (n) => /zero_std|zero_variance/.test(n)],
  ["loss terms", (n) => /loss/.test(n)],
  ["KL", (n) => /(^|\/)kl(\/|$)|_kl$/.test(n)],
  ["entropy", (n) => /entropy|^ent\//.test(n)],
  ["grad norm", (n) => /grad_norm/.test(n)],
  ["learning rate", (n) => /learning_rate|(^|\/)lr$/.test(n)],
  ["lengths", (n) => /length/.test(n)],
  ["throughput", (n) => /tokens_per_s|tokens\/s|step_time/.test(n)],
  ["reward spread", (n) => /std/.test(n)],
  ["other", () => true],
];
const DEFAULT_EXCLUDE = /^(epoch|time|world_size|step|num_tokens)$|clip_ratio|min_|max_|terminated/;
const STD_FOR = (name) => [/mean$/.test(name) ? name.replace(/mean$/, "std") : null, `${name}_std`, `${name}/std`].filter(Boolean);
const groupIndex = (name) => GROUPS.findIndex(([, test]) => test(name));

const state = { jobs: [], selectedJobs: [], series: new Map(), picked: [], plots: [] };

export async function initCurves() {
  state.jobs = (await api("/v1/training-jobs?limit=50")).items;
  $("training-empty").hidden = state.jobs.length > 0;
  const want = getState();
  const wantedJobs = (want.jobs || "").split(",").map(Number).filter(Boolean);
  state.selectedJobs = wantedJobs.length ? wantedJobs.filter((id) => state.jobs.some((j) => j.id === id)) : state.jobs.slice(0, 1).map((j) => j.id);
  if (want.smooth) $("smoothing").value = want.smooth;
  $("smoothing-value").textContent = $("smoothing").value;
  const box = $("job-picker");
  for (const node of [...box.childNodes]) if (node.tagName !== "LEGEND") node.remove();
  for (const j of state.jobs) {
    const input = el("input", { type: "checkbox", value: j.id, checked: state.selectedJobs.includes(j.id) });
    input.addEventListener("change", () => pickJobs([...box.querySelectorAll("input:checked")].map((i) => Number(i.value)), true));
    box.appendChild(el("label", { class: "inline", title: `${j.status} · model ${j.model ?? "–"} · code ${j.git_sha ?? "–"}` },
      input, `#${j.id} ${j.name} (${j.status})`));
  }
  $("smoothing").addEventListener("input", () => {
    $("smoothing-value").textContent = $("smoothing").value;
    setState({ smooth: Number($("smoothing").value) || null });
    draw();
  });
  window.addEventListener("resize", () => resize());
  await pickJobs(state.selectedJobs, false, (want.curves || "").split(",").filter(Boolean));
}

export async function pickJobs(ids, push, wantedCurves = null) {
  state.selectedJobs = ids;
  for (const input of $("job-picker").querySelectorAll("input")) input.checked = ids.includes(Number(input.value));
  setState({ jobs: ids.join(",") || null }, push);
  for (const id of ids) {
    if (!state.series.has(id)) state.series.set(id, (await api(`/v1/training-jobs/${id}/metrics?max_points=2000`)).series);
  }
  buildPicker(wantedCurves);
  draw();
}

function names() {
  const all = new Set();
  for (const id of state.selectedJobs) for (const n of Object.keys(state.series.get(id) || {})) all.add(n);
  return [...all].sort();
}

function groupOf(name) { return GROUPS.find(([, test]) => test(name))[0]; }

function buildPicker(wanted) {
  const all = names();
  if (wanted && wanted.length) state.picked = wanted.filter((n) => all.includes(n));
  else if (!state.picked.length || !state.picked.some((n) => all.includes(n))) {
    state.picked = all.filter((n) => !DEFAULT_EXCLUDE.test(n) && groupOf(n) !== "other" && groupOf(n) !== "reward spread");
  }
  const box = clear($("metric-picker"));
  for (const [group] of GROUPS) {
    const members = all.filter((n) => groupOf(n) === group);
    if (!members.length) continue;
    const row = el("div", { class: "group-row" }, el("span", { class: "group", text: group }));
    box.appendChild(row);
    for (const n of members) {
      const input = el("input", { type: "checkbox", value: n, checked: state.picked.includes(n) });
      input.addEventListener("change", () => {
        state.picked = [...box.querySelectorAll("input:checked")].map((i) => i.value);
        setState({ curves: state.picked.join(",") }, false);
        draw();
      });
      row.appendChild(el("label", { title: n }, input, n));
    }
  }
}

function ema(values, alpha) {
  if (!alpha) return values;
  let acc = 0, w = 0;
  return values.map((v) => {
    if (v === null) return null;
    acc = alpha * acc + (1 - alpha) * v;
    w = alpha * w + (1 - alpha);
    return acc / w; // bias-corrected, so the first points are not pulled to 0
  });
}

function aligned(name) {
  const steps = new Set();
  const per = state.selectedJobs.map((id) => (state.series.get(id) || {})[name]).map((s) => s || { steps: [], values: [] });
  per.forEach((s) => s.steps.forEach((x) => steps.add(x)));
  const xs = [...steps].sort((a, b) => a - b);
  const col = (s) => { const m = new Map(s.steps.map((x, i) => [x, s.values[i]])); return xs.map((x) => (m.has(x) ? m.get(x) : null)); };
  return { xs, per, col };
}

function draw() {
  for (const p of state.plots) p.destroy();
  state.plots = [];
  const root = clear($("curves"));
  const alpha = Number($("smoothing").value) || 0;
  const ordered = [...state.picked].sort((a, b) => groupIndex(a) - groupIndex(b) || a.localeCompare(b));
  for (const name of ordered) {
    const { xs, col } = aligned(name);
    if (!xs.length) continue;
    const data = [xs];
    const series = [{ label: "step", value: (u, v) => (v === null ? "–" : String(v)) }];
    state.selectedJobs.forEach((id, k) => {
      const job = state.jobs.find((j) => j.id === id) || { name: String(id) };
      const colour = PALETTE[k % PALETTE.length];
      const ys = col((state.series.get(id) || {})[name] || { steps: [], values: [] });
      const main = ema(ys, alpha);
      data.push(main);
      series.push({ label: `#${id} ${job.name}`, stroke: colour, width: 2, spanGaps: true, value: (u, v) => fmt(v) });
      const stdName = STD_FOR(name).find((n) => (state.series.get(id) || {})[n]);
      if (stdName && groupOf(name) === "reward") {
        const sd = col(state.series.get(id)[stdName]);
        data.push(main.map((v, i) => (v === null || sd[i] === null ? null : v + sd[i])));
        data.push(main.map((v, i) => (v === null || sd[i] === null ? null : v - sd[i])));
        for (const sign of ["+", "−"]) series.push({ label: `#${id} ${sign} ${stdName}`, stroke: colour, width: 1, dash: [4, 4], spanGaps: true, value: (u, v) => fmt(v) });
      }
    });
    const panel = el("div", { class: "panel", "data-metric": name });
    panel.appendChild(el("h4", { text: `${name}${alpha ? ` (EMA ${alpha})` : ""}` }));
    root.appendChild(panel);
    const opts = {
      width: Math.max(260, panel.clientWidth - 12),
      height: 220,
      scales: { x: { time: false } },
      cursor: { sync: { key: "prl-curves" } },
      legend: { live: true },
      axes: [
        { label: "step", labelSize: 18, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000],
          values: (u, vals) => vals.map((v) => String(Math.round(v))) },
        { label: name.split("/").pop(), labelSize: 18, size: 64, values: (u, vals) => vals.map((v) => fmt(v, 3)) },
      ],
      series,
    };
    state.plots.push(new window.uPlot(opts, data, panel));
  }
  window.prlPlots = state.plots; // for the browser tests
}

function resize() {
  for (const p of state.plots) {
    const w = Math.max(260, p.root.parentElement.clientWidth - 12);
    if (Math.abs(w - p.width) > 4) p.setSize({ width: w, height: 220 });
  }
}
