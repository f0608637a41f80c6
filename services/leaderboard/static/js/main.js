// Page wiring: every view reads its state from the URL (suite, version, metric, run, sample,
// compare, jobs, curves, smooth), so a link reproduces what you were looking at.

import { $, getState, setStatus } from "./core.js";
import { drawChart, hooks as boardHooks, currentBoard, initLeaderboard } from "./leaderboard.js";
import { hooks as runHooks, initRun, openRun } from "./run.js";
import { initCompare, onRun } from "./compare.js";
import { initCurves, pickJobs } from "./curves.js";

async function main() {
  setStatus("loading…");
  initRun();
  initCompare();
  runHooks.onRun = (run) => onRun(run).catch((e) => setStatus(e.message));
  boardHooks.openRun = (id) => openRun(id).then(() => $("run-section").scrollIntoView()).catch((e) => setStatus(e.message));
  boardHooks.openJob = (id) => pickJobs([id], true).then(() => $("training-section").scrollIntoView());
  await initLeaderboard();
  const st = getState();
  if (st.run) await openRun(Number(st.run), { sample: st.sample || null, push: false });
  await initCurves();
  window.addEventListener("resize", () => drawChart(currentBoard()));
  window.addEventListener("popstate", () => window.location.reload());
  setStatus("");
  document.body.dataset.ready = "true";
}

main().catch((err) => {
  setStatus(`error: ${err.message}`);
  document.body.dataset.ready = "true";
  document.body.dataset.error = err.message;
});
