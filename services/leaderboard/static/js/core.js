// Shared helpers: the API with the optional read key, DOM building (text only: model names,
// predictions and metric names are untrusted), number formats, URL state and downloads.

export const $ = (id) => document.getElementById(id);

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

function headers() {
  const h = { Accept: "application/json" };
  const key = sessionStorage.getItem("prl-key");
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

export async function api(path) {
  const res = await fetch(path, { headers: headers() });
  if (res.status === 401) throw new Error("this server needs a read key: open the page as /?key=<your key>");
  if (!res.ok) {
    let msg = res.statusText;
    try { msg = (await res.json()).error.message; } catch (_) { /* keep statusText */ }
    throw new Error(`${res.status}: ${msg}`);
  }
  return res.json();
}

export async function apiBlob(path) {
  const res = await fetch(path, { headers: headers() });
  if (!res.ok) throw new Error(`${res.status}`);
  return res.blob();
}

/** Every item of a paginated list route (follows next_cursor). */
export async function apiAll(path, params, pick = (x) => x, max = 20000) {
  const out = [];
  let cursor = null;
  while (out.length < max) {
    const q = new URLSearchParams(params);
    if (cursor !== null) q.set("cursor", cursor);
    const page = pick(await api(`${path}?${q}`));
    out.push(...page.items);
    if (page.next_cursor === null || page.next_cursor === undefined) break;
    cursor = page.next_cursor;
  }
  return out;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = String(v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export function cell(row, text, cls, title) {
  const td = el("td", { class: cls, title });
  td.textContent = text === null || text === undefined || text === "" ? "–" : String(text);
  row.appendChild(td);
  return td;
}

export function headRow(table, columns) {
  const tr = clear(table.tHead.rows[0] || table.tHead.appendChild(el("tr")));
  for (const c of columns) {
    const th = el("th", { class: c.num ? "num" : null, title: c.title || null });
    th.textContent = c.label;
    tr.appendChild(th);
  }
}

export function fmt(v, digits = 4) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return Number(v).toFixed(digits).replace(/\.?0+$/, "") || "0";
}

export const ci = (lo, hi) => (lo === null || hi === null || lo === undefined || hi === undefined ? "–" : `[${fmt(lo)}, ${fmt(hi)}]`);
export const short = (s, n) => (s ? String(s).slice(0, n) : "–");
export const when = (t) => (t ? new Date(t).toISOString().replace("T", " ").slice(0, 16) : "–");
export const direction = (hib) => (hib ? "↑ higher is better" : "↓ lower is better");

export function setStatus(text) { $("status").textContent = text; }

// ---- URL state: suite, version, metric, run, sample, compare, jobs, curves, smooth -----------

export function getState() {
  const q = new URLSearchParams(window.location.search);
  return Object.fromEntries(q.entries());
}

export function setState(patch, push = false) {
  const q = new URLSearchParams(window.location.search);
  for (const [k, v] of Object.entries(patch)) {
    if (v === null || v === undefined || v === "") q.delete(k);
    else q.set(k, String(v));
  }
  const url = `${window.location.pathname}?${q}${window.location.hash}`;
  if (url !== window.location.pathname + window.location.search + window.location.hash) {
    window.history[push ? "pushState" : "replaceState"](null, "", url);
  }
}

// ---- export ------------------------------------------------------------------------------------

function csvField(v) {
  if (v === null || v === undefined) return "";
  const s = typeof v === "object" ? JSON.stringify(v) : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** RFC 4180 CSV of ``rows`` (objects) with the union of their keys as the header. */
export function toCsv(rows) {
  const cols = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
  const lines = [cols.map(csvField).join(",")];
  for (const r of rows) lines.push(cols.map((c) => csvField(r[c])).join(","));
  return lines.join("\r\n") + "\r\n";
}

export function download(name, text, type) {
  const a = el("a", { href: URL.createObjectURL(new Blob([text], { type })), download: name });
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 0);
}
