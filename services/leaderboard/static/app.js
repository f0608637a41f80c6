// Leaderboard page: fetches /v1/* and fills the tables and charts. Text goes in with
// textContent only (model names and predictions are untrusted).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { suites: [], runId: null, samplesCursor: null };

// A server with PRL_LEADERBOARD_AUTH_READ=true needs a read key: open the page once as
// /?key=<key>; the key is kept for this tab only (sessionStorage) and removed from the URL.
(() => {
  const url = new URL(window.location.href);
  const key = url.searchParams.get("key");
  if (key) {
    sessionStorage.setItem("prl-key", key);
    url.searchParams.delete("key");
    window.history.replaceState(null, "", url.toString());
  }
})();

async function api(path) {
  const headers = { Accept: "application/json" };
  const key = sessionStorage.getItem("prl-key");
  if (key) headers.Authorization = `Bearer ${key}`;
  const res = await fetch(path, { headers });
  if (res.status === 401) throw new Error("this server needs a read key: open the page as /?key=<your key>");
  if (!res.ok) {
    let msg = res.statusText;
    try { msg = (await res.json()).error.message; } catch (_) { /* keep statusText */ }
    throw new Error(`${res.status}: ${msg}`);
  }
  return res.json();
}

function setStatus(text) { $("status").textContent = text; }

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function clearBody(table) {
  const body = table.tBodies[0];
  while (body.firstChild) body.removeChild(body.firstChild);
  return body;
}

const ci = (lo, hi) => (lo === null || hi === null || lo === undefined ? "–" : `[${Charts.fmt(lo)}, ${Charts.fmt(hi)}]`);
const short = (s, n) => (s ? String(s).slice(0, n) : "–");
const when = (t) => (t ? new Date(t).toISOString().replace("T", " ").slice(0, 19) : "–");

// ------------------------------------------------------------------ leaderboard

function selectedSuite() {
  return state.suites[Number($("suite-select").value)] || null;
}

function fillMetrics() {
  const suite = selectedSuite(), sel = $("metric-select");
  while (sel.firstChild) sel.removeChild(sel.firstChild);
  for (const m of suite ? suite.metrics : []) sel.appendChild(new Option(m, m));
  const preferred = ["f1", "map", "acc@0.5", "accuracy", "miou"].find((m) => suite && suite.metrics.includes(m));
  if (preferred) sel.value = preferred;
}

async function loadLeaderboard() {
  const suite = selectedSuite(), metric = $("metric-select").value;
  const body = clearBody($("leaderboard-table"));
  $("suite-hash").textContent = suite ? `v${suite.version} · content ${short(suite.content_hash, 12)}` : "";
  if (!suite || !metric) {
    $("leaderboard-empty").hidden = false;
    Charts.bars($("leaderboard-chart"), []);
    return;
  }
  const q = new URLSearchParams({ suite: suite.name, version: suite.version, metric });
  const lb = await api(`/v1/leaderboard?${q}`);
  $("leaderboard-empty").hidden = lb.entries.length > 0;
  for (const e of lb.entries) {
    const tr = document.createElement("tr");
    tr.className = "clickable";
    tr.dataset.runId = e.run_id;
    cell(tr, e.rank);
    cell(tr, e.model);
    cell(tr, Charts.fmt(e.value), "num");
    cell(tr, ci(e.ci_low, e.ci_high), "num");
    cell(tr, Charts.fmt(e.stderr), "num");
    cell(tr, e.n, "num");
    cell(tr, e.n_runs, "num");
    cell(tr, `#${e.run_id}`);
    cell(tr, e.seed);
    cell(tr, short(e.git_sha, 8), "mono");
    tr.addEventListener("click", () => showRun(e.run_id));
    body.appendChild(tr);
  }
  const arrow = lb.higher_is_better ? "↑ higher is better" : "↓ lower is better";
  $("leaderboard-chart").setAttribute("data-direction", arrow);
  Charts.bars($("leaderboard-chart"), lb.entries.map((e) => ({ label: e.model, value: e.value, low: e.ci_low, high: e.ci_high })));
}

// ------------------------------------------------------------------ runs

async function loadRuns() {
  const suite = selectedSuite();
  const q = new URLSearchParams({ limit: "25" });
  if (suite) { q.set("suite", suite.name); q.set("version", suite.version); }
  const page = await api(`/v1/runs?${q}`);
  const body = clearBody($("runs-table"));
  for (const r of page.items) {
    const tr = document.createElement("tr");
    tr.className = "clickable";
    tr.dataset.runId = r.id;
    cell(tr, `#${r.id}`);
    cell(tr, r.model);
    cell(tr, `${r.suite}@${r.suite_version}`);
    cell(tr, r.status, `status-${r.status}`);
    cell(tr, r.n_samples ? `${r.n_done}/${r.n_samples}` : r.n_done, "num");
    cell(tr, short(r.config_hash, 10), "mono");
    cell(tr, r.seed);
    cell(tr, when(r.finished_at));
    tr.addEventListener("click", () => showRun(r.id));
    body.appendChild(tr);
  }
}

function provenance(run) {
  const dl = $("run-provenance");
  while (dl.firstChild) dl.removeChild(dl.firstChild);
  const rows = [
    ["key", run.key], ["model", `${run.model}${run.model_revision ? " @ " + run.model_revision : ""}`],
    ["suite", `${run.suite} v${run.suite_version} (${run.suite_hash})`], ["config hash", run.config_hash],
    ["seed", run.seed], ["git sha", run.git_sha],
    ["libraries", Object.entries(run.lib_versions || {}).map(([k, v]) => `${k}=${v}`).join(" ")],
    ["started", when(run.started_at)], ["finished", when(run.finished_at)], ["source", run.source],
  ];
  for (const [k, v] of rows) {
    const dt = document.createElement("dt"); dt.textContent = k; dl.appendChild(dt);
    const dd = document.createElement("dd"); dd.textContent = v === null || v === undefined || v === "" ? "–" : String(v); dl.appendChild(dd);
  }
}

function appendSamples(items) {
  const body = $("samples-table").tBodies[0];
  for (const p of items) {
    const tr = document.createElement("tr");
    cell(tr, p.sample_id, "mono");
    cell(tr, Charts.fmt(p.reward), "num");
    cell(tr, Object.entries(p.components || {}).map(([k, v]) => `${k}=${Charts.fmt(v)}`).join(" "));
    cell(tr, p.error ? `${p.error.code}: ${p.error.message || ""}` : "");
    cell(tr, p.prediction, "pred");
    body.appendChild(tr);
  }
}

async function showRun(runId) {
  state.runId = runId;
  const q = new URLSearchParams({ limit: "20" });
  if ($("errors-only").checked) q.set("errors_only", "true");
  const run = await api(`/v1/runs/${runId}?${q}`);
  $("run-detail").hidden = false;
  $("run-title").textContent = `Run #${run.id}: ${run.model} on ${run.suite}@${run.suite_version} (${run.status})`;
  for (const tr of document.querySelectorAll("tr[data-run-id]")) tr.classList.toggle("selected", Number(tr.dataset.runId) === run.id);
  provenance(run);
  const body = clearBody($("run-metrics-table"));
  for (const m of run.metrics) {
    const tr = document.createElement("tr");
    cell(tr, m.name);
    cell(tr, Charts.fmt(m.value), "num");
    cell(tr, ci(m.ci_low, m.ci_high), "num");
    cell(tr, m.higher_is_better ? "↑" : "↓");
    body.appendChild(tr);
  }
  Charts.bars($("run-metrics-chart"), run.metrics.map((m) => ({ label: m.name, value: m.value, low: m.ci_low, high: m.ci_high })));
  clearBody($("samples-table"));
  appendSamples(run.samples ? run.samples.items : []);
  state.samplesCursor = run.samples ? run.samples.next_cursor : null;
  $("samples-more").hidden = state.samplesCursor === null;
}

async function moreSamples() {
  if (state.runId === null || state.samplesCursor === null) return;
  const q = new URLSearchParams({ limit: "20", cursor: String(state.samplesCursor) });
  if ($("errors-only").checked) q.set("errors_only", "true");
  const run = await api(`/v1/runs/${state.runId}?${q}`);
  appendSamples(run.samples.items);
  state.samplesCursor = run.samples.next_cursor;
  $("samples-more").hidden = state.samplesCursor === null;
}

// ------------------------------------------------------------------ training curves

// Pairs "x/mean" with "x/std" (also "x_mean"/"x_std" and "x"/"x_std") so the std becomes a band.
function stdPartner(name, names) {
  const candidates = [name.replace(/mean$/, "std"), `${name}_std`, `${name}/std`];
  return candidates.find((c) => c !== name && names.includes(c)) || null;
}

function curves(series, pick) {
  const names = Object.keys(series);
  const used = new Set(names.map((n) => stdPartner(n, names)).filter(Boolean));
  return names
    .filter((n) => pick(n) && !used.has(n))
    .map((n) => {
      const partner = stdPartner(n, names);
      const s = { name: n, steps: series[n].steps, values: series[n].values };
      if (partner && series[partner].steps.length === s.steps.length) s.std = series[partner].values;
      return s;
    });
}

async function loadJobs() {
  const page = await api("/v1/training-jobs?limit=50");
  const sel = $("job-select");
  while (sel.firstChild) sel.removeChild(sel.firstChild);
  for (const j of page.items) sel.appendChild(new Option(`#${j.id} ${j.name} (${j.status})`, j.id));
  $("training-empty").hidden = page.items.length > 0;
  if (page.items.length) await loadCurves();
  else { Charts.lines($("reward-chart"), []); Charts.lines($("loss-chart"), []); }
}

async function loadCurves() {
  const id = $("job-select").value;
  if (!id) return;
  const data = await api(`/v1/training-jobs/${id}/metrics?max_points=1000`);
  $("job-info").textContent = `${data.job.model || ""} · config ${short(data.job.config_hash, 10)} · seed ${data.job.seed ?? "–"}`;
  Charts.lines($("reward-chart"), curves(data.series, (n) => /reward/i.test(n)));
  Charts.lines($("loss-chart"), curves(data.series, (n) => /loss|entropy|kl/i.test(n) && !/reward/i.test(n)));
}

// ------------------------------------------------------------------ start

async function guarded(fn) {
  try { await fn(); setStatus(""); } catch (err) { setStatus(`error: ${err.message}`); }
}

async function init() {
  const data = await api("/v1/suites");
  state.suites = data.suites;
  const sel = $("suite-select");
  data.suites.forEach((s, i) => sel.appendChild(new Option(`${s.name} v${s.version} (${s.n_runs} runs)`, i)));
  fillMetrics();
  await Promise.all([loadLeaderboard(), loadRuns(), loadJobs()]);
  document.body.dataset.ready = "true";
}

$("suite-select").addEventListener("change", () => guarded(async () => { fillMetrics(); await Promise.all([loadLeaderboard(), loadRuns()]); }));
$("metric-select").addEventListener("change", () => guarded(loadLeaderboard));
$("job-select").addEventListener("change", () => guarded(loadCurves));
$("errors-only").addEventListener("change", () => guarded(() => (state.runId === null ? null : showRun(state.runId))));
$("samples-more").addEventListener("click", () => guarded(moreSamples));
guarded(init);
