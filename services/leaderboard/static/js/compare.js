// Two runs on the same suite, sample by sample: reward and component differences, largest
// first, with how many samples got better, worse or stayed equal.

import { $, api, apiAll, cell, clear, el, fmt, headRow, setState } from "./core.js";
import { openRun, runState } from "./run.js";

export function initCompare() {
  $("compare-select").addEventListener("change", () => compare($("compare-select").value, true));
}

export async function onRun(run) {
  $("compare-section").hidden = false;
  $("compare-a").textContent = `run #${run.id} (${run.model})`;
  const runs = await apiAll("/v1/runs", { suite: run.suite, version: run.suite_version, limit: 200 }, (x) => x, 400);
  const sel = clear($("compare-select"));
  sel.appendChild(new Option("choose a run", ""));
  for (const r of runs) if (r.id !== run.id) sel.appendChild(new Option(`#${r.id} ${r.model} (${r.status})`, String(r.id)));
  const want = new URLSearchParams(window.location.search).get("compare");
  if (want && [...sel.options].some((o) => o.value === want)) { sel.value = want; await compare(want, false); }
  else { clear($("compare-table").tBodies[0]); $("compare-summary").textContent = ""; }
}

async function compare(otherId, push) {
  setState({ compare: otherId || null }, push);
  const body = clear($("compare-table").tBodies[0]);
  if (!otherId) { $("compare-summary").textContent = ""; return; }
  const a = runState.samples, other = await api(`/v1/runs/${otherId}?limit=1`);
  const b = await apiAll(`/v1/runs/${otherId}`, { limit: 500 }, (d) => d.samples);
  const bi = new Map(b.map((p) => [p.sample_id, p]));
  const comps = [...new Set([...a, ...b].flatMap((p) => Object.keys(p.components || {})))];
  const rows = [];
  for (const p of a) {
    const q = bi.get(p.sample_id);
    if (!q) continue;
    rows.push({ id: p.sample_id, a: p.reward ?? 0, b: q.reward ?? 0, d: (q.reward ?? 0) - (p.reward ?? 0),
      comps: comps.map((c) => ((q.components || {})[c] ?? 0) - ((p.components || {})[c] ?? 0)) });
  }
  rows.sort((x, y) => Math.abs(y.d) - Math.abs(x.d) || x.id.localeCompare(y.id));
  const better = rows.filter((r) => r.d > 1e-12).length, worse = rows.filter((r) => r.d < -1e-12).length;
  const meanD = rows.length ? rows.reduce((s, r) => s + r.d, 0) / rows.length : 0;
  $("compare-summary").textContent = `${rows.length} shared samples · run #${otherId} (${other.model}) minus run #${runState.run.id}: `
    + `mean Δreward ${fmt(meanD)} · better on ${better}, worse on ${worse}, equal on ${rows.length - better - worse}`;
  headRow($("compare-table"), [{ label: "sample" }, { label: `reward #${runState.run.id}`, num: true }, { label: `reward #${otherId}`, num: true },
    { label: "Δ reward", num: true }, ...comps.map((c) => ({ label: `Δ ${c}`, num: true }))]);
  for (const r of rows) {
    const tr = el("tr", { class: "clickable" });
    cell(tr, r.id, "mono");
    cell(tr, fmt(r.a), "num");
    cell(tr, fmt(r.b), "num");
    cell(tr, fmt(r.d), `num ${r.d > 0 ? "delta-pos" : r.d < 0 ? "delta-neg" : ""}`);
    for (const v of r.comps) cell(tr, fmt(v), `num ${v > 0 ? "delta-pos" : v < 0 ? "delta-neg" : ""}`);
    tr.addEventListener("click", () => openRun(runState.run.id, { sample: r.id }));
    body.appendChild(tr);
  }
}
