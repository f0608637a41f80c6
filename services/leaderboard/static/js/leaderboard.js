// Leaderboard: one suite version × one metric, best completed run per model. Columns: rank,
// model, significance marker against the leader (the API's overlaps_best), value ± CI, the
// model's other metrics on this suite, reward spec, date, training job, provenance.

import { $, api, cell, ci, clear, direction, download, el, fmt, getState, headRow, setState, short, toCsv, when } from "./core.js";

const PREFERRED = [/^dig\/f1$/, /f1$/, /^map$|\/map$/, /acc@0\.5/, /accuracy/, /miou/, /^reward\[/];
const state = { suites: [], board: null, extras: new Map(), columns: [] };
export const hooks = { openRun: () => {}, openJob: () => {} };

export async function initLeaderboard() {
  state.suites = (await api("/v1/suites")).suites;
  const sel = clear($("suite-select"));
  state.suites.forEach((s, i) => sel.appendChild(new Option(`${s.name} v${s.version}`, String(i))));
  const want = getState();
  const idx = state.suites.findIndex((s) => s.name === want.suite && (!want.version || s.version === want.version));
  if (idx >= 0) sel.value = String(idx);
  fillMetrics(want.metric);
  sel.addEventListener("change", () => { fillMetrics(); load(true); });
  $("metric-select").addEventListener("change", () => load(true));
  $("lb-csv").addEventListener("click", () => exportBoard("csv"));
  $("lb-json").addEventListener("click", () => exportBoard("json"));
  await load(false);
  return state.suites;
}

export const selectedSuite = () => state.suites[Number($("suite-select").value)] || null;

function fillMetrics(wanted) {
  const suite = selectedSuite(), sel = clear($("metric-select"));
  const names = suite ? suite.metrics : [];
  for (const m of names) sel.appendChild(new Option(m, m));
  const pick = (wanted && names.includes(wanted) && wanted)
    || PREFERRED.map((re) => names.find((m) => re.test(m))).find(Boolean);
  if (pick) sel.value = pick;
}

async function load(push) {
  const suite = selectedSuite(), metric = $("metric-select").value;
  setState({ suite: suite && suite.name, version: suite && suite.version, metric }, push);
  $("lb-error").hidden = true;
  const body = clear($("leaderboard-table").tBodies[0]);
  if (!suite || !metric) {
    $("lb-meta").textContent = "No completed runs stored yet: run `prl bench run` (see README).";
    drawChart(null);
    return;
  }
  const q = new URLSearchParams({ suite: suite.name, version: suite.version, metric });
  let lb;
  try {
    lb = await api(`/v1/leaderboard?${q}`);
  } catch (err) {
    $("lb-error").textContent = err.message;
    $("lb-error").hidden = false;
    state.board = null;
    drawChart(null);
    return;
  }
  state.board = lb;
  const ids = lb.entries.map((e) => e.run_id);
  state.extras = new Map();
  if (ids.length) {
    const q2 = new URLSearchParams();
    ids.forEach((id) => q2.append("run_id", id));
    for (const x of (await api(`/v1/run-extras?${q2}`)).runs) state.extras.set(x.run_id, x);
  }
  // the model's other metrics on this suite (the most common ones, up to 6 columns)
  const counts = new Map();
  for (const x of state.extras.values()) for (const m of x.metrics) if (m.name !== metric) counts.set(m.name, (counts.get(m.name) || 0) + 1);
  state.columns = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, 6).map(([n]) => n);
  const spec = lb.reward_spec ? ` · reward spec ${lb.reward_spec} (${short(lb.reward_spec_hash, 12)})` : "";
  $("lb-meta").textContent = `${lb.suite} v${lb.version} · content ${short(lb.content_hash, 12)} · ranked by ${lb.metric} ${direction(lb.higher_is_better)}${spec}`;
  headRow($("leaderboard-table"), [
    { label: "#" }, { label: "model" }, { label: "sig.", title: "≈ CI overlaps the leader's; ▼ significantly worse" },
    { label: `${lb.metric} ${lb.higher_is_better ? "↑" : "↓"}`, num: true }, { label: "95% CI", num: true },
    { label: "n", num: true }, { label: "runs", num: true },
    ...state.columns.map((c) => ({ label: c, num: true })),
    { label: "reward spec" }, { label: "date" }, { label: "training job" }, { label: "run" }, { label: "git" },
  ]);
  for (const e of lb.entries) {
    const x = state.extras.get(e.run_id) || { metrics: [] };
    const byName = new Map(x.metrics.map((m) => [m.name, m]));
    const tr = el("tr", { class: "clickable", "data-run-id": e.run_id });
    cell(tr, e.rank);
    cell(tr, e.model);
    cell(tr, e.rank === 1 ? "best" : e.overlaps_best === true ? "≈" : e.overlaps_best === false ? "▼" : "–", null,
      e.overlaps_best === null ? "no CI stored" : null);
    cell(tr, fmt(e.value), "num");
    cell(tr, ci(e.ci_low, e.ci_high), "num");
    cell(tr, e.n, "num");
    cell(tr, e.n_runs, "num");
    for (const c of state.columns) cell(tr, byName.has(c) ? fmt(byName.get(c).value) : null, "num");
    cell(tr, e.reward_spec || x.reward_spec, "mono", e.reward_spec_hash || x.reward_spec_hash);
    cell(tr, when(e.finished_at));
    const jobTd = cell(tr, null);
    if (x.training_job_id) {
      clear(jobTd);
      jobTd.appendChild(el("a", { href: `?jobs=${x.training_job_id}#training-section`, text: `job #${x.training_job_id}`,
        onclick: (ev) => { ev.preventDefault(); ev.stopPropagation(); hooks.openJob(x.training_job_id); } }));
    }
    cell(tr, `#${e.run_id}`);
    cell(tr, short(e.git_sha, 8), "mono", e.git_sha);
    tr.addEventListener("click", () => hooks.openRun(e.run_id));
    body.appendChild(tr);
  }
  if (!lb.entries.length) $("lb-meta").textContent += " · no completed runs";
  drawChart(lb);
}

function boardRows() {
  const lb = state.board;
  if (!lb) return [];
  return lb.entries.map((e) => {
    const x = state.extras.get(e.run_id) || { metrics: [] };
    const row = {
      suite: lb.suite, version: lb.version, metric: lb.metric, higher_is_better: lb.higher_is_better,
      rank: e.rank, model: e.model, value: e.value, ci_low: e.ci_low, ci_high: e.ci_high, stderr: e.stderr, n: e.n,
      overlaps_best: e.overlaps_best, n_runs: e.n_runs, reward_spec: e.reward_spec, reward_spec_hash: e.reward_spec_hash,
      run_id: e.run_id, training_job_id: x.training_job_id, finished_at: e.finished_at, git_sha: e.git_sha,
      config_hash: e.config_hash, seed: e.seed,
    };
    for (const m of x.metrics) if (m.name !== lb.metric) row[m.name] = m.value;
    return row;
  });
}

function exportBoard(kind) {
  const lb = state.board;
  if (!lb) return;
  const base = `leaderboard-${lb.suite}-v${lb.version}-${lb.metric.replace(/[^\w.-]+/g, "_")}`;
  if (kind === "csv") download(`${base}.csv`, toCsv(boardRows()), "text/csv");
  else download(`${base}.json`, JSON.stringify({ ...lb, rows: boardRows() }, null, 2), "application/json");
}

// ---- chart: one bar per model with its CI whisker; y axis titled with the metric ------------

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, text) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
}

function niceTicks(lo, hi, n = 5) {
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / n, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((v) => v >= raw) || raw;
  const out = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(12));
  return out;
}

export function drawChart(lb) {
  const svg = clear($("leaderboard-chart"));
  if (!lb) $("lb-chart-title").textContent = "";
  const W = svg.clientWidth || 600, H = svg.clientHeight || 280;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  if (!lb || !lb.entries.length) return;
  const es = lb.entries;
  const vals = es.flatMap((e) => [e.value, e.ci_low, e.ci_high]).filter((v) => v !== null && v !== undefined);
  let lo = Math.min(0, ...vals), hi = Math.max(...vals);
  if (hi === lo) hi = lo + 1;
  const ticks = niceTicks(lo, hi);
  lo = Math.min(lo, ticks[0]); hi = Math.max(hi, ticks[ticks.length - 1]);
  const m = { l: 62, r: 12, t: 12, b: 30 };
  $("lb-chart-title").textContent = `${lb.metric} (${direction(lb.higher_is_better)}) · best run per model, whiskers: 95% CI`;
  const y = (v) => m.t + (H - m.t - m.b) * (1 - (v - lo) / (hi - lo));
  const bw = (W - m.l - m.r) / es.length;
  for (const t of ticks) {
    svg.appendChild(s("line", { x1: m.l, x2: W - m.r, y1: y(t), y2: y(t), stroke: "#e5e7eb" }));
    svg.appendChild(s("text", { x: m.l - 6, y: y(t) + 4, "text-anchor": "end", "font-size": 11, fill: "#5b6472" }, fmt(t, 3)));
  }
  const yt = s("text", { x: 14, y: (m.t + H - m.b) / 2, "text-anchor": "middle", "font-size": 12, fill: "#5b6472",
    transform: `rotate(-90 14 ${(m.t + H - m.b) / 2})` }, lb.metric);
  svg.appendChild(yt);
  es.forEach((e, i) => {
    const x0 = m.l + i * bw + bw * 0.2, w = bw * 0.6;
    const top = y(Math.max(e.value, 0)), bottom = y(Math.min(e.value, 0));
    const bar = s("rect", { x: x0, y: top, width: w, height: Math.max(bottom - top, 1), fill: i === 0 ? "#2563eb" : "#93b4f5" });
    bar.appendChild(s("title", {}, `${e.model}: ${fmt(e.value)} ${ci(e.ci_low, e.ci_high)}`));
    svg.appendChild(bar);
    if (e.ci_low !== null && e.ci_high !== null) {
      const cx = x0 + w / 2;
      svg.appendChild(s("line", { x1: cx, x2: cx, y1: y(e.ci_low), y2: y(e.ci_high), stroke: "#1d2330", "stroke-width": 1.5 }));
      for (const v of [e.ci_low, e.ci_high]) svg.appendChild(s("line", { x1: cx - 6, x2: cx + 6, y1: y(v), y2: y(v), stroke: "#1d2330", "stroke-width": 1.5 }));
    }
    const fit = Math.max(3, Math.floor(bw / 6.6));
    const label = e.model.length > fit ? `${e.model.slice(0, fit - 1)}…` : e.model;
    const t = s("text", { x: x0 + w / 2, y: H - m.b + 16, "text-anchor": "middle", "font-size": 11, fill: "#1d2330" }, label);
    t.appendChild(s("title", {}, e.model));
    svg.appendChild(t);
  });
}

export const currentBoard = () => state.board;
