// One run: provenance, metrics, every sample (filters by DiG stage and difference kind, the
// metrics broken down by them), a sample viewer (images with GT and predicted boxes, IoU per
// matched pair, each component's raw and scaled value and the aggregate) and exports.

import { $, api, apiAll, apiBlob, cell, ci, clear, direction, download, el, fmt, headRow, setState, short, toCsv, when } from "./core.js";

const state = { run: null, reward: null, samples: [], selected: null };
export const runState = state;
export const hooks = { onRun: () => {} };

const kindsOf = (p) => ((p.extra && p.extra.meta && p.extra.meta.kinds) || []).filter(Boolean);
const stageOf = (p) => (p.extra && p.extra.meta && p.extra.meta.stage) || null;

export function initRun() {
  for (const id of ["stage-filter", "kind-filter", "errors-only"]) $(id).addEventListener("change", renderSamples);
  $("samples-csv").addEventListener("click", () => exportSamples("csv"));
  $("samples-json").addEventListener("click", () => exportSamples("json"));
}

export async function openRun(runId, { sample = null, push = true } = {}) {
  const [run, reward] = await Promise.all([api(`/v1/runs/${runId}?limit=1`), api(`/v1/runs/${runId}/reward`)]);
  state.run = run;
  state.reward = reward;
  state.samples = await apiAll(`/v1/runs/${runId}`, { limit: 500 }, (d) => d.samples);
  setState({ run: runId, sample }, push);
  $("run-section").hidden = false;
  $("run-title").textContent = `Run #${run.id} · ${run.model} on ${run.suite} v${run.suite_version} · ${run.status}`;
  provenance(run, reward);
  metricsTable(run);
  fillFilters();
  renderSamples();
  hooks.onRun(run);
  if (sample) await openSample(sample, false);
  else $("sample-viewer").hidden = true;
}

function provenance(run, reward) {
  const dl = clear($("run-provenance"));
  const rows = [
    ["key", run.key], ["model", `${run.model}${run.model_revision ? " @ " + run.model_revision : ""}`],
    ["suite", `${run.suite} v${run.suite_version} (${short(run.suite_hash, 16)})`],
    ["reward spec", reward ? `${reward.name} = ${reward.aggregate}(${reward.components.map((c) => c.name).join(", ")}) · ${short(reward.hash, 12)}` : null],
    ["config hash", short(run.config_hash, 16)], ["seed", run.seed], ["code", run.git_sha],
    ["libraries", Object.entries(run.lib_versions || {}).map(([k, v]) => `${k}=${v}`).join(" ")],
    ["started", when(run.started_at)], ["finished", when(run.finished_at)], ["source", run.source],
    ["samples", `${run.n_done}/${run.n_samples ?? "?"}`],
  ];
  for (const [k, v] of rows) {
    dl.appendChild(el("dt", { text: k }));
    dl.appendChild(el("dd", { text: v === null || v === undefined || v === "" ? "–" : v }));
  }
}

function metricsTable(run) {
  const body = clear($("run-metrics-table").tBodies[0]);
  for (const m of run.metrics) {
    const tr = el("tr");
    cell(tr, m.name, "mono");
    cell(tr, fmt(m.value), "num");
    cell(tr, ci(m.ci_low, m.ci_high), "num");
    cell(tr, direction(m.higher_is_better));
    cell(tr, m.reward_spec, "mono", m.reward_spec_hash);
    body.appendChild(tr);
  }
}

function fillFilters() {
  const stages = [...new Set(state.samples.map(stageOf).filter(Boolean))].sort();
  const kinds = [...new Set(state.samples.flatMap(kindsOf))].sort();
  for (const [id, values] of [["stage-filter", stages], ["kind-filter", kinds]]) {
    const sel = $(id), keep = sel.value;
    clear(sel).appendChild(new Option("all", ""));
    for (const v of values) sel.appendChild(new Option(v, v));
    sel.value = values.includes(keep) ? keep : "";
    sel.disabled = values.length === 0;
  }
}

function filtered() {
  const stage = $("stage-filter").value, kind = $("kind-filter").value, errors = $("errors-only").checked;
  return state.samples.filter((p) => (!stage || stageOf(p) === stage) && (!kind || kindsOf(p).includes(kind)) && (!errors || p.error));
}

function componentNames() {
  if (state.reward) return state.reward.components.map((c) => c.name);
  return [...new Set(state.samples.flatMap((p) => Object.keys(p.components || {})))];
}

/** Mean reward and mean of each component per group (a sample with several kinds counts in each). */
function breakdown(samples) {
  const comps = componentNames();
  const groups = new Map();
  const add = (key, p) => {
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(p);
  };
  for (const p of samples) {
    add("all", p);
    if (stageOf(p)) add(`stage: ${stageOf(p)}`, p);
    for (const k of new Set(kindsOf(p))) add(`difference: ${k}`, p);
  }
  const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
  return [...groups.entries()].map(([group, ps]) => {
    const row = { group, n: ps.length, reward: mean(ps.map((p) => p.reward ?? 0)), errors: ps.filter((p) => p.error).length };
    for (const c of comps) row[c] = mean(ps.map((p) => (p.components || {})[c] ?? 0));
    return row;
  });
}

function renderSamples() {
  const rows = filtered();
  $("samples-count").textContent = `${rows.length} of ${state.samples.length} samples`;
  const comps = componentNames();
  headRow($("breakdown-table"), [{ label: "group" }, { label: "n", num: true }, { label: "mean reward", num: true },
    ...comps.map((c) => ({ label: `mean ${c}`, num: true })), { label: "errors", num: true }]);
  const bbody = clear($("breakdown-table").tBodies[0]);
  for (const r of breakdown(rows)) {
    const tr = el("tr");
    cell(tr, r.group);
    cell(tr, r.n, "num");
    cell(tr, fmt(r.reward), "num");
    for (const c of comps) cell(tr, fmt(r[c]), "num");
    cell(tr, r.errors, "num");
    bbody.appendChild(tr);
  }
  const body = clear($("samples-table").tBodies[0]);
  for (const p of rows) {
    const tr = el("tr", { class: `clickable${state.selected === p.sample_id ? " selected" : ""}`, "data-sample-id": p.sample_id });
    cell(tr, p.sample_id, "mono");
    cell(tr, [stageOf(p), ...new Set(kindsOf(p))].filter(Boolean).join(" · "));
    cell(tr, fmt(p.reward), "num");
    cell(tr, p.error ? p.error.code : "");
    tr.addEventListener("click", () => openSample(p.sample_id, true));
    body.appendChild(tr);
  }
}

export async function openSample(sampleId, push) {
  const d = await api(`/v1/runs/${state.run.id}/samples/${encodeURIComponent(sampleId)}`);
  state.selected = sampleId;
  setState({ sample: sampleId }, push);
  for (const tr of $("samples-table").tBodies[0].rows) tr.classList.toggle("selected", tr.dataset.sampleId === sampleId);
  $("sample-viewer").hidden = false;
  $("sample-title").textContent = `${d.sample_id} · reward ${fmt(d.reward)}${d.error ? ` · error ${d.error.code}: ${d.error.message}` : ""}`;
  componentsTable(d);
  pairsTable(d);
  $("sample-completion").textContent = d.prediction ?? "";
  await drawImages(d);
}

function componentsTable(d) {
  const body = clear($("components-table").tBodies[0]);
  const ranges = state.reward ? state.reward.components : Object.keys(d.components).map((name) => ({ name, lo: null, hi: null, weight: null }));
  for (const c of ranges) {
    const v = d.components[c.name];
    const scaled = v === null || v === undefined || c.lo === null ? null : Math.min(1, Math.max(0, (v - c.lo) / (c.hi - c.lo)));
    const tr = el("tr");
    cell(tr, c.name, "mono");
    cell(tr, fmt(v), "num");
    cell(tr, c.lo === null ? null : `[${fmt(c.lo)}, ${fmt(c.hi)}]`, "num");
    cell(tr, fmt(scaled), "num");
    cell(tr, fmt(c.weight), "num");
    body.appendChild(tr);
  }
  const tr = el("tr", { class: "total" });
  cell(tr, state.reward ? `reward = ${state.reward.aggregate}(…)` : "reward", "mono");
  cell(tr, fmt(d.reward), "num");
  cell(tr, ""); cell(tr, ""); cell(tr, "");
  body.appendChild(tr);
}

function pairsTable(d) {
  const body = clear($("pairs-table").tBodies[0]);
  for (const p of d.pairs) {
    const tr = el("tr");
    cell(tr, `P${p.pred + 1}`);
    cell(tr, `G${p.gt + 1}`);
    cell(tr, fmt(p.iou, 3), "num");
    cell(tr, p.tp ? "yes" : "no");
    body.appendChild(tr);
  }
  const unmatchedP = d.pred_boxes.length - d.pairs.length, unmatchedG = d.gt_boxes.length - d.pairs.length;
  if (unmatchedP > 0 || unmatchedG > 0 || !d.pairs.length) {
    const tr = el("tr");
    const td = cell(tr, `${d.pred_boxes.length} predicted, ${d.gt_boxes.length} GT boxes; unmatched: ${unmatchedP} predicted, ${unmatchedG} GT`, "wrap");
    td.colSpan = 4;
    body.appendChild(tr);
  }
}

async function drawImages(d) {
  const box = clear($("sample-images"));
  const names = d.n_images === 2 ? ["image A", "image B"] : Array.from({ length: d.n_images }, (_, i) => `image ${i + 1}`);
  const pairOf = new Map(d.pairs.map((p) => [p.pred, p]));
  for (let k = 0; k < Math.max(d.n_images, 1); k++) {
    const canvas = el("canvas", { "aria-label": `${names[k] || "no image"} with boxes` });
    box.appendChild(el("figure", {}, canvas, el("figcaption", { text: names[k] || "image not stored" })));
    let bitmap = null;
    if (k < d.n_images) {
      try { bitmap = await createImageBitmap(await apiBlob(`/v1/runs/${state.run.id}/samples/${encodeURIComponent(d.sample_id)}/images/${k}`)); } catch (_) { bitmap = null; }
    }
    const [w, h] = d.image_size || (bitmap ? [bitmap.width, bitmap.height] : [100, 100]);
    const scale = Math.max(1, Math.floor(480 / Math.max(w, h)));
    canvas.width = w * scale; canvas.height = h * scale;
    const g = canvas.getContext("2d");
    g.imageSmoothingEnabled = false;
    if (bitmap) g.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    else { g.fillStyle = "#f3f4f6"; g.fillRect(0, 0, canvas.width, canvas.height); }
    const rect = (b, colour, dash) => {
      g.setLineDash(dash); g.strokeStyle = colour; g.lineWidth = 2;
      g.strokeRect(b[0] * scale, b[1] * scale, (b[2] - b[0]) * scale, (b[3] - b[1]) * scale);
    };
    const label = (text, x, y, colour) => {
      g.setLineDash([]); g.font = "bold 12px system-ui, sans-serif";
      const tw = g.measureText(text).width;
      g.fillStyle = colour; g.fillRect(x, Math.max(0, y - 14), tw + 6, 14);
      g.fillStyle = "#fff"; g.fillText(text, x + 3, Math.max(11, y - 3));
    };
    d.gt_boxes.forEach((b, i) => { rect(b, "#16a34a", []); label(`G${i + 1}`, b[0] * scale, b[1] * scale, "#16a34a"); });
    d.pred_boxes.forEach((b, i) => {
      rect(b, "#dc2626", [6, 3]);
      const p = pairOf.get(i);
      label(`P${i + 1}${p ? ` IoU ${p.iou.toFixed(2)}` : " unmatched"}`, b[0] * scale, b[3] * scale + 14, "#dc2626");
    });
  }
}

function sampleRows() {
  return filtered().map((p) => ({
    run_id: state.run.id, model: state.run.model, sample_id: p.sample_id, stage: stageOf(p), kinds: kindsOf(p).join("|"),
    reward: p.reward, ...Object.fromEntries(Object.entries(p.components || {}).map(([k, v]) => [`component:${k}`, v])),
    error: p.error ? p.error.code : null, prediction: p.prediction,
  }));
}

function exportSamples(kind) {
  if (!state.run) return;
  const base = `run-${state.run.id}-samples`;
  if (kind === "csv") download(`${base}.csv`, toCsv(sampleRows()), "text/csv");
  else download(`${base}.json`, JSON.stringify({ run: state.run, reward: state.reward, samples: filtered() }, null, 2), "application/json");
}
