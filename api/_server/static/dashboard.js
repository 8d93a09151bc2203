"use strict";
// The runlog dashboard: plain JS over the JSON API of the server that served it.
// Pages are routed by the URL's hash: #/ runs, #/run/<project>/<run>, #/sweeps,
// #/sweep/<id>, #/audit. Every request asks for what one screen shows and no more.

const params = new URLSearchParams(location.search);
const REFRESH_MS = Number(params.get("refresh") || 2000);
const POINTS = 1000; // points per run and chart the server downsamples to
const PAGE = 50;
const COLORS = ["#1769aa", "#e65100", "#2e7d32", "#8e24aa", "#c62828", "#00838f", "#6d4c41", "#ad1457", "#558b2f", "#283593"];

const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else if (k in node) node[k] = v;
    else node.setAttribute(k, v);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) node.setAttribute(k, v);
  for (const child of children.flat(Infinity)) if (child) node.append(child instanceof Node ? child : String(child));
  return node;
}

async function getJSON(path) {
  const response = await fetch(path);
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

function showError(error) { $("error").textContent = error ? String(error.message || error) : ""; }

function fmt(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return String(value);
    const abs = Math.abs(value);
    return abs !== 0 && (abs < 1e-3 || abs >= 1e6) ? value.toExponential(3) : String(Number(value.toPrecision(5)));
  }
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}
function fmtTime(us) { return us ? new Date(us / 1000).toLocaleString() : ""; }
function fmtDuration(s) {
  if (!s) return "0s";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  return h ? `${h}h${String(m).padStart(2, "0")}m` : m ? `${m}m${String(sec).padStart(2, "0")}s` : `${(s).toFixed(1)}s`;
}
const ALIVE = new Set(["pending", "running", "preempting"]);
const runPath = (project, runId) => "/api/runs/" + enc(project) + "/" + enc(runId);
const runHash = (project, runId) => "#/run/" + enc(project) + "/" + enc(runId);

// --- the token (sweep controls): kept for this tab only -------------------------------
$("token").value = sessionStorage.getItem("runlog-token") || "";
$("token").addEventListener("change", (e) => sessionStorage.setItem("runlog-token", e.target.value));

// --- routing ---------------------------------------------------------------------------
let cleanup = [];
function leave() { for (const fn of cleanup) fn(); cleanup = []; }
function every(fn, ms) {
  let timer = null, stopped = false;
  const loop = async () => {
    try { await fn(); } catch (error) { showError(error); }
    if (!stopped) timer = setTimeout(loop, ms);
  };
  timer = setTimeout(loop, ms);
  cleanup.push(() => { stopped = true; clearTimeout(timer); });
}

async function route() {
  leave();
  showError(null);
  const hash = location.hash || "#/";
  const [path, query] = hash.slice(1).split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const q = new URLSearchParams(query || "");
  const page = parts[0] || "runs";
  for (const a of document.querySelectorAll("header nav a")) {
    a.classList.toggle("active", a.dataset.nav === (page === "run" ? "runs" : page === "sweep" ? "sweeps" : page));
  }
  const view = $("view");
  view.replaceChildren();
  view.dataset.page = page;
  try {
    if (page === "runs") await runsPage(view);
    else if (page === "run") await runPage(view, parts[1], parts.slice(2).join("/"));
    else if (page === "sweeps") await sweepsPage(view);
    else if (page === "sweep") await sweepPage(view, parts.slice(1).join("/"));
    else if (page === "audit") await auditPage(view, q);
    else view.append(el("p", { class: "empty", text: "no such page" }));
  } catch (error) { showError(error); }
  view.dataset.ready = "1";
}
window.addEventListener("hashchange", route);

async function refreshHead() { $("head").textContent = (await getJSON("/api/head")).head; }
setInterval(() => refreshHead().catch(() => {}), 5000);
refreshHead().catch(showError);

// --- runs page: the table and the charts of the selected runs ------------------------
const table = {
  project: "", status: "", sweep: "", tag: "", q: "", sort: "created", order: "desc", offset: 0,
  columns: null, selected: new Map(), // key -> {project, run_id, status}
};

async function runsPage(view) {
  const filters = el("div", { class: "bar", id: "filters" });
  const tableBox = el("div", { id: "runs-box" });
  const pager = el("div", { class: "bar", id: "pager" });
  const chartBox = el("section", { id: "charts-section" });
  view.append(el("section", {}, el("h2", { text: "Runs" }), filters, tableBox, pager), chartBox);
  const charts = new Charts(chartBox);
  cleanup.push(() => charts.close());
  let facets = null;

  async function loadFacets() {
    facets = await getJSON("/api/dash/facets" + (table.project ? "?project=" + enc(table.project) : ""));
    if (table.columns === null) {
      table.columns = [...facets.config_keys.slice(0, 3).map((k) => "config." + k), ...facets.summary_keys.slice(0, 4).map((k) => "summary." + k)];
    }
    drawFilters();
  }

  function select(name, values, current, label) {
    const s = el("select", { id: "filter-" + name, onchange: (e) => { table[name] = e.target.value; table.offset = 0; if (name === "project") loadFacets().then(loadPage); else loadPage(); } },
      el("option", { value: "", text: "any " + label }),
      values.map((v) => el("option", { value: v, text: v, selected: v === current })));
    return el("label", {}, label, " ", s);
  }

  function drawFilters() {
    const search = el("input", { type: "search", id: "search", placeholder: "search id, name, tags, notes", value: table.q });
    let timer = null;
    search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => { table.q = search.value; table.offset = 0; loadPage(); }, 250); });
    const chooser = el("details", { class: "columns", id: "columns" }, el("summary", { text: "columns" }),
      el("div", {}, [...facets.config_keys.map((k) => "config." + k), ...facets.summary_keys.map((k) => "summary." + k)].map((c) =>
        el("label", { style: "display:block" }, el("input", { type: "checkbox", value: c, checked: table.columns.includes(c), onchange: (e) => {
          table.columns = e.target.checked ? [...table.columns, c] : table.columns.filter((x) => x !== c);
          loadPage();
        } }), " ", c))));
    filters.replaceChildren(
      select("project", Object.keys(facets.projects), table.project, "project"),
      select("status", Object.keys(facets.statuses).sort(), table.status, "status"),
      select("sweep", facets.sweeps, table.sweep, "sweep"),
      select("tag", facets.tags, table.tag, "tag"),
      search, chooser,
      el("span", { class: "muted", id: "selected-count", text: table.selected.size + " selected" }),
      el("button", { id: "clear-selection", text: "clear selection", onclick: () => { table.selected.clear(); charts.setRuns([]); loadPage(); } }));
  }

  async function loadPage() {
    const q = new URLSearchParams({ sort: table.sort, order: table.order, offset: table.offset, limit: PAGE });
    for (const name of ["project", "status", "sweep", "tag", "q"]) if (table[name]) q.set(name, table[name]);
    if (table.columns.length) q.set("columns", table.columns.join(","));
    const page = await getJSON("/api/dash/runs?" + q);
    drawTable(page);
    $("head").textContent = Math.max(Number($("head").textContent), page.position);
  }

  function header(label, key, numeric) {
    const sorted = table.sort === key;
    return el("th", { class: "sortable" + (sorted ? " sorted" + (table.order === "asc" ? " asc" : "") : "") + (numeric ? " num" : ""), "data-sort": key, text: label,
      onclick: () => { if (table.sort === key) table.order = table.order === "asc" ? "desc" : "asc"; else { table.sort = key; table.order = numeric ? "desc" : "asc"; } table.offset = 0; loadPage(); } });
  }

  function drawTable(page) {
    const head = el("tr", {}, el("th", {}, ""), header("project", "project"), header("run", "run_id"), header("name", "name"), header("status", "status"),
      header("steps", "steps", true), header("last step", "last_step", true), header("runtime", "runtime", true), header("created", "created", true),
      el("th", { text: "sweep" }), el("th", { text: "tags" }), table.columns.map((c) => header(c, c, true)));
    const rows = page.items.map((run) => {
      const key = run.project + "/" + run.run_id;
      const box = el("input", { type: "checkbox", class: "pick", checked: table.selected.has(key), onchange: (e) => {
        if (e.target.checked) table.selected.set(key, { project: run.project, run_id: run.run_id, status: run.status });
        else table.selected.delete(key);
        row.classList.toggle("selected", e.target.checked);
        $("selected-count").textContent = table.selected.size + " selected";
        charts.setRuns([...table.selected.values()]);
      } });
      const row = el("tr", { "data-run": key, class: table.selected.has(key) ? "selected" : "" },
        el("td", {}, box), el("td", { text: run.project }),
        el("td", { class: "run-id" }, el("a", { href: runHash(run.project, run.run_id), text: run.run_id })),
        el("td", { text: run.name || "" }), el("td", { class: "status " + run.status, text: run.status }),
        el("td", { class: "num steps", text: run.steps }), el("td", { class: "num last-step", text: fmt(run.last_step) }),
        el("td", { class: "num", text: fmtDuration(run.runtime_s) }), el("td", { text: fmtTime(run.created_us) }),
        el("td", {}, run.sweep_id ? el("a", { href: "#/sweep/" + enc(run.sweep_id), text: run.sweep_id }) : ""),
        el("td", { class: "chips" }, run.tags.map((t) => el("span", { text: t }))),
        table.columns.map((c) => el("td", { class: "num", "data-column": c, text: fmt(run.columns[c]) })));
      const known = table.selected.get(key);
      if (known) known.status = run.status;
      return row;
    });
    if (!rows.length) rows.push(el("tr", {}, el("td", { colSpan: 11 + table.columns.length, class: "empty", text: "no runs match" })));
    tableBox.replaceChildren(el("table", { id: "runs" }, el("thead", {}, head), el("tbody", {}, rows)));
    const last = Math.min(page.offset + PAGE, page.total);
    pager.replaceChildren(
      el("button", { id: "prev", text: "\u2190 previous", disabled: page.offset === 0, onclick: () => { table.offset = Math.max(0, table.offset - PAGE); loadPage(); } }),
      el("span", { id: "page-info", "data-total": page.total, text: page.total ? `${page.offset + 1}\u2013${last} of ${page.total}` : "0 runs" }),
      el("button", { id: "next", text: "next \u2192", disabled: last >= page.total, onclick: () => { table.offset += PAGE; loadPage(); } }));
  }

  await loadFacets();
  await loadPage();
  charts.setRuns([...table.selected.values()]);
  let ticks = 0;
  every(async () => {
    if (document.hidden) return;
    await loadPage();
    // New projects, tags or keys appear in the filters now and then, but never while the
    // user is choosing in them (redrawing would close the column chooser under them).
    const busy = filters.contains(document.activeElement) || $("columns").open;
    if (++ticks % 5 === 0 && !busy) await loadFacets();
  }, REFRESH_MS);
}

// --- charts: one uPlot panel per metric, the chosen runs overlaid, live --------------
class Charts {
  constructor(box, { single = false } = {}) {
    this.box = box;
    this.single = single;
    this.runs = new Map(); // key -> {project, run_id, status, color, points: [{step, position, t, m}], last}
    this.x = "step";
    this.smooth = 0;
    this.log = false;
    this.plots = new Map(); // metric -> {plot, node}
    this.source = null;
    this.zoom = null; // [lo, hi] of steps, when zoomed in
    this.keys = [];
    this.controls = el("div", { class: "bar", id: "chart-controls" });
    this.panels = el("div", { class: "panels", id: "panels" });
    box.replaceChildren(el("h2", { text: single ? "Charts" : "Charts of the selected runs" }), this.controls, this.panels);
    this.drawControls();
    this.observer = new ResizeObserver(() => this.resize());
    this.observer.observe(this.panels);
  }

  close() {
    if (this.source) this.source.close();
    this.source = null;
    this.observer.disconnect();
    for (const { plot } of this.plots.values()) plot.destroy();
    this.plots.clear();
  }

  drawControls() {
    const xs = el("select", { id: "chart-x", onchange: (e) => { this.x = e.target.value; this.zoom = null; this.rebuild(); } },
      el("option", { value: "step", text: "step", selected: this.x === "step" }),
      el("option", { value: "@time", text: "wall time", selected: this.x === "@time" }),
      this.keys.map((k) => el("option", { value: k, text: k, selected: this.x === k })));
    const smooth = el("input", { type: "range", id: "chart-smooth", min: 0, max: 0.99, step: 0.01, value: this.smooth,
      oninput: (e) => { this.smooth = Number(e.target.value); label.textContent = this.smooth.toFixed(2); this.redraw(); } });
    const label = el("span", { text: this.smooth.toFixed(2) });
    this.controls.replaceChildren(
      el("label", {}, "x axis ", xs),
      el("label", {}, "smoothing ", smooth, " ", label),
      el("label", {}, el("input", { type: "checkbox", id: "chart-log", checked: this.log, onchange: (e) => { this.log = e.target.checked; this.rebuild(); } }), " log scale"),
      el("span", { class: "muted", text: "drag to zoom, double-click to reset" }));
  }

  async setRuns(list) {
    const wanted = new Map(list.map((r) => [r.project + "/" + r.run_id, r]));
    for (const key of [...this.runs.keys()]) if (!wanted.has(key)) this.runs.delete(key);
    const fresh = [...wanted.entries()].filter(([key]) => !this.runs.has(key));
    await Promise.all(fresh.map(async ([key, r]) => {
      const run = { project: r.project, run_id: r.run_id, status: r.status, points: [], last: 0 };
      this.runs.set(key, run);
      // The run first, then its history: a step logged in between is in the history,
      // so following the event stream from the later of the two misses nothing.
      const state = await getJSON(runPath(r.project, r.run_id));
      run.status = state.status;
      run.last = state.last_position;
      const history = await getJSON(runPath(r.project, r.run_id) + "/history?points=" + POINTS);
      run.points = history.points.map((p) => ({ step: p.step, position: p.position, t: p.recorded_at_us, m: p.metrics }));
      for (const p of history.points) run.last = Math.max(run.last, p.position);
    }));
    let i = 0;
    for (const run of this.runs.values()) run.color = COLORS[i++ % COLORS.length];
    this.follow();
    this.rebuild();
  }

  follow() {
    // One event stream for every live run shown: browsers allow few connections per server.
    if (this.source) this.source.close();
    this.source = null;
    const live = [...this.runs.values()].filter((r) => ALIVE.has(r.status));
    if (!live.length) return;
    const q = new URLSearchParams();
    for (const r of live) q.append("stream", "run:" + r.project + "/" + r.run_id);
    q.set("from", String(Math.max(1, Math.min(...live.map((r) => r.last + 1)))));
    const source = new EventSource("/api/events?" + q);
    const handle = (message) => { if (source === this.source) this.onEvent(JSON.parse(message.data)); };
    for (const type of ["StepLogged", "RunExited", "RunKilled", "PreemptMarked", "HeartbeatExpired", "RunRevived", "RunInitialized"]) source.addEventListener(type, handle);
    this.source = source;
  }

  onEvent(event) {
    const run = this.runs.get(event.stream.slice(4));
    if (!run || event.position <= run.last) return;
    run.last = event.position;
    if (event.type === "StepLogged") {
      const tail = run.points[run.points.length - 1];
      if (tail && event.data.step <= tail.step) return; // the fold drops such a step too
      run.points.push({ step: event.data.step, position: event.position, t: event.recorded_at_us, m: event.data.metrics });
      if (run.points.length > 2 * POINTS) {
        // Halve the resolution of the older half, keeping the first and newest points.
        const cut = run.points.length >> 1;
        run.points = run.points.slice(0, cut).filter((_, i) => i % 2 === 0).concat(run.points.slice(cut));
      }
      const grew = Object.keys(event.data.metrics).some((k) => !this.keys.includes(k));
      if (grew) this.rebuild(); else this.scheduleRedraw();
    } else if (event.type === "RunExited" || event.type === "RunKilled") {
      run.status = "ended";
    }
  }

  scheduleRedraw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.redraw(); });
  }

  metricKeys() {
    const keys = new Set();
    for (const run of this.runs.values()) for (const p of run.points) for (const k of Object.keys(p.m)) if (typeof p.m[k] === "number") keys.add(k);
    return [...keys].sort();
  }

  xOf(point) { return this.x === "step" ? point.step : this.x === "@time" ? point.t / 1e6 : point.m[this.x]; }

  series(run, metric) {
    const pairs = [];
    for (const p of run.points) {
      const x = this.xOf(p), y = p.m[metric];
      if (typeof x !== "number" || typeof y !== "number" || !Number.isFinite(y)) continue;
      pairs.push([x, this.log && y <= 0 ? null : y]);
    }
    if (this.x !== "step" && this.x !== "@time") pairs.sort((a, b) => a[0] - b[0]);
    if (this.smooth > 0) {
      // Exponential moving average, debiased so the first points are not pulled to 0.
      let acc = 0, weight = 0;
      for (const pair of pairs) {
        if (pair[1] === null) continue;
        acc = acc * this.smooth + (1 - this.smooth) * pair[1];
        weight = weight * this.smooth + (1 - this.smooth);
        pair[1] = acc / weight;
      }
    }
    const xs = [], ys = [];
    for (const [x, y] of pairs) { if (xs.length && x === xs[xs.length - 1]) { ys[ys.length - 1] = y; continue; } xs.push(x); ys.push(y); }
    return [xs, ys];
  }

  data(metric) {
    const runs = [...this.runs.values()];
    const tables = runs.map((run) => this.series(run, metric));
    if (!tables.length) return [[]];
    return tables.length === 1 ? tables[0] : uPlot.join(tables);
  }

  rebuild() {
    const keys = this.metricKeys();
    this.keys = keys;
    this.drawControls();
    for (const { plot } of this.plots.values()) plot.destroy();
    this.plots.clear();
    const runs = [...this.runs.values()];
    if (!runs.length) { this.panels.replaceChildren(el("p", { class: "empty", id: "no-chart", text: this.single ? "no metrics logged" : "select runs in the table to chart them" })); return; }
    this.panels.replaceChildren();
    for (const metric of keys) {
      if (metric === this.x) continue;
      const node = el("div", { class: "panel", "data-metric": metric });
      const target = el("div");
      node.append(el("h3", { text: metric }), target);
      this.panels.append(node);
      const width = this.widthOf(node);
      const opts = {
        width, height: 220, legend: { show: runs.length > 1 || this.single },
        scales: { x: { time: this.x === "@time" }, y: { distr: this.log ? 3 : 1 } },
        axes: [{}, { size: 60 }],
        series: [{ label: this.x === "@time" ? "time" : this.x }, ...runs.map((r) => ({ label: r.project + "/" + r.run_id, stroke: r.color, width: 1.5, spanGaps: true }))],
        cursor: { drag: { x: true, y: false } },
        hooks: { setScale: [(u, key) => { if (key === "x") this.onZoom(u); }] },
      };
      const plot = new uPlot(opts, this.data(metric), target);
      this.plots.set(metric, { plot, node });
      this.annotate(metric);
    }
  }

  redraw() {
    for (const [metric, { plot }] of this.plots) {
      plot.setData(this.data(metric), this.zoom === null);
      if (this.zoom !== null) plot.setScale("x", { min: this.zoom[0], max: this.zoom[1] });
      this.annotate(metric);
    }
  }

  annotate(metric) {
    // What the tests (and a curious user) can read off a panel without parsing the canvas.
    const { node } = this.plots.get(metric);
    const runs = [...this.runs.values()];
    let points = 0, lastStep = null;
    for (const run of runs) {
      const xs = this.series(run, metric)[0];
      points += xs.length;
      const mine = run.points.filter((p) => typeof p.m[metric] === "number");
      if (mine.length) lastStep = Math.max(lastStep ?? -Infinity, mine[mine.length - 1].step);
    }
    node.dataset.runs = String(runs.length);
    node.dataset.points = String(points);
    node.dataset.lastStep = lastStep === null ? "" : String(lastStep);
  }

  onZoom(u) {
    const { min, max } = u.scales.x;
    if (this.syncing || min === undefined) return;
    const extent = u.data[0];
    const full = !extent.length || (min <= extent[0] && max >= extent[extent.length - 1]);
    this.zoom = full ? null : [min, max];
    this.syncing = true;
    for (const { plot } of this.plots.values()) if (plot !== u) plot.setScale("x", { min, max });
    this.syncing = false;
    if (!full && this.x === "step") {
      clearTimeout(this.zoomTimer);
      this.zoomTimer = setTimeout(() => this.refine(Math.floor(min), Math.ceil(max) + 1), 200);
    }
  }

  async refine(start, stop) {
    // Zoomed in: ask the server for the range at full resolution (downsampled to POINTS),
    // and merge it into what is shown.
    await Promise.all([...this.runs.values()].map(async (run) => {
      const history = await getJSON(runPath(run.project, run.run_id) + `/history?points=${POINTS}&start=${start}&stop=${stop}`);
      const detail = history.points.map((p) => ({ step: p.step, position: p.position, t: p.recorded_at_us, m: p.metrics }));
      run.points = run.points.filter((p) => p.step < start).concat(detail, run.points.filter((p) => p.step >= stop));
    }));
    this.redraw();
  }

  widthOf(node) { return Math.max(300, (node.clientWidth || 440) - 10); }
  resize() {
    for (const { plot, node } of this.plots.values()) {
      const width = this.widthOf(node);
      if (Math.abs(plot.width - width) > 4) plot.setSize({ width, height: 220 });
    }
  }
}

// --- run page -------------------------------------------------------------------------
async function runPage(view, project, runId) {
  const base = runPath(project, runId);
  // The timeline may need the run's whole stream read once (a long run's first opening):
  // everything else is shown without waiting for it.
  const lineRequest = getJSON("/api/dash/runs/" + enc(project) + "/" + enc(runId) + "/lifeline");
  lineRequest.catch(() => {});
  const [run, files] = await Promise.all([getJSON(base), getJSON(base + "/files")]);
  const timelineBox = el("section", { id: "timeline-pending", class: "timeline" }, el("h2", { text: "Incarnation timeline" }), el("p", { class: "empty", text: "reading the run's events\u2026" }));
  const kv = (pairs) => el("div", { class: "kv" }, pairs.map(([k, v]) => [el("div", { text: k }), el("div", { text: fmt(v) })]));
  const flat = (obj, prefix = "") => Object.entries(obj || {}).flatMap(([k, v]) => v && typeof v === "object" && !Array.isArray(v) ? flat(v, prefix + k + ".") : [[prefix + k, v]]);
  view.append(
    el("section", { id: "run-header" },
      el("h2", {}, "Run ", el("span", { id: "run-name", text: project + "/" + runId }), " ", el("span", { id: "run-status", class: "status " + run.status, text: run.status })),
      kv([["name", run.name], ["incarnation", run.incarnation], ["resumes", run.resumes], ["steps", run.steps], ["last step", run.last_step],
        ["created", fmtTime(run.created_us)], ["updated", fmtTime(run.updated_us)], ["host / pid", run.host ? run.host + " / " + run.pid : ""],
        ["exit code", run.exit_code], ["group / job type", [run.group, run.job_type].filter(Boolean).join(" / ")], ["fenced events", run.fenced_events],
        ["log position", run.last_position]]),
      run.sweep_id ? el("p", {}, "sweep ", el("a", { href: "#/sweep/" + enc(run.sweep_id), text: run.sweep_id }), " with ", fmt(run.params)) : null,
      el("p", {}, el("a", { href: "#/audit?run=" + enc(project + "/" + runId), text: "explain this run" }))),
    el("div", { class: "cols" },
      el("section", { id: "run-config" }, el("h2", { text: "Config" }), kv(flat(run.config))),
      el("section", { id: "run-summary" }, el("h2", { text: "Summary" }), kv(flat(run.summary))),
      el("section", { id: "run-notes" }, el("h2", { text: "Notes and tags" }),
        el("p", { text: run.notes || "no notes", class: run.notes ? "" : "empty" }),
        el("p", { class: "chips", id: "run-tags" }, run.tags.length ? run.tags.map((t) => el("span", { text: t })) : el("i", { class: "empty", text: "no tags" }))),
      el("section", { id: "run-files" }, el("h2", { text: "Files" }),
        files.length ? el("table", {}, el("tbody", {}, files.map((f) => el("tr", {},
          el("td", {}, el("a", { href: base + "/files/" + enc(f.name), download: f.name, text: f.name })),
          el("td", { class: "num", text: f.size + " B" }), el("td", {}, el("a", { href: "#/audit?from=" + f.position, text: "#" + f.position })))))) : el("p", { class: "empty", text: "no files saved" }))),
    timelineBox);
  const charts = el("section", { id: "charts-section" });
  view.append(charts);
  const chart = new Charts(charts, { single: true });
  cleanup.push(() => chart.close());
  await Promise.all([
    chart.setRuns([{ project, run_id: runId, status: run.status }]),
    lineRequest.then((line) => timelineBox.replaceWith(timelineSection(line, project, runId))),
  ]);
}

function timelineSection(line, project, runId) {
  const section = el("section", { id: "timeline", class: "timeline", "data-bands": line.bands.length, "data-preempts": line.marks.filter((m) => m.kind === "preempt").length });
  section.append(el("h2", { text: "Incarnation timeline" }));
  const W = 1000, rowH = 26, L = 90;
  const t0 = line.first_us, t1 = Math.max(line.last_us, t0 + 1);
  const maxStep = Math.max(1, ...line.bands.map((b) => b.last_step ?? 0));
  const tx = (us) => L + ((us - t0) / (t1 - t0)) * (W - L - 10);
  const sx = (step) => L + (step / maxStep) * (W - L - 10);
  const H = 3 * rowH + 40;
  const parts = [svg("text", { x: 4, y: rowH - 8 }, "wall time"), svg("text", { x: 4, y: 2 * rowH + 10 }, "steps")];
  line.bands.forEach((b, i) => {
    const bad = b.end && b.end !== "exit 0";
    const title = `incarnation ${b.incarnation}: ${fmtTime(b.started_us)} \u2013 ${fmtTime(b.ended_us)}, steps ${fmt(b.first_step)}\u2013${fmt(b.last_step)}, ${b.end || "alive"}`;
    const wx = tx(b.started_us), ww = Math.max(2, tx(b.ended_us) - wx);
    parts.push(svg("a", { href: "#/audit?from=" + b.position },
      svg("rect", { class: "band" + (bad ? " ended-bad" : ""), x: wx, y: 6, width: ww, height: rowH - 6, "data-incarnation": b.incarnation }, svg("title", {}, title)),
      svg("text", { x: wx + 3, y: rowH - 4 }, "#" + b.incarnation)));
    if (b.first_step !== null) {
      const sx0 = sx(b.starting_step || b.first_step), sw = Math.max(2, sx(b.last_step) - sx0);
      parts.push(svg("rect", { class: "band" + (bad ? " ended-bad" : ""), x: sx0, y: rowH + 14 + (i % 2) * 6, width: sw, height: rowH - 10 }, svg("title", {}, title)));
    }
  });
  for (const m of line.marks) {
    const x = tx(m.recorded_at_us);
    const title = `#${m.position} ${fmtTime(m.recorded_at_us)}: ${m.label}` + (m.step !== null ? ` (after step ${m.step})` : "");
    const link = svg("a", { href: "#/audit?from=" + m.position, class: "mark-link", "data-kind": m.kind, "data-position": m.position },
      svg("line", { class: "mark kind-" + m.kind, x1: x, x2: x, y1: 2, y2: rowH + 2 }),
      m.step !== null ? svg("circle", { class: "kind-" + m.kind, cx: sx(m.step), cy: 2 * rowH + 8, r: 3.5 }) : null,
      svg("title", {}, title));
    parts.push(link);
  }
  parts.push(svg("text", { x: L, y: H - 6 }, fmtTime(t0)), svg("text", { x: W - 10, y: H - 6, "text-anchor": "end" }, fmtTime(t1)),
    svg("text", { x: L, y: 3 * rowH + 6 }, "0"), svg("text", { x: W - 10, y: 3 * rowH + 6, "text-anchor": "end" }, "step " + maxStep));
  section.append(svg("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", height: H }, parts));
  if (line.fenced) section.append(el("p", { text: `${line.fenced} events of older incarnations were fenced (ignored).` }));

  // State as of any position: the slider moves over the positions where something happened.
  const stops = [...new Set([...line.bands.map((b) => b.position), ...line.marks.map((m) => m.position), line.position])].sort((a, b) => a - b);
  const out = el("div", { id: "as-of-state" });
  const label = el("span", { id: "as-of-position" });
  const slider = el("input", { type: "range", id: "as-of", min: 0, max: stops.length - 1, step: 1, value: stops.length - 1, style: "width: 60%" });
  let timer = null;
  const show = async () => {
    const position = stops[Number(slider.value)];
    label.textContent = "#" + position;
    const mark = line.marks.find((m) => m.position === position);
    const answer = await getJSON("/api/dash/runs/" + enc(project) + "/" + enc(runId) + "/as_of?position=" + position);
    if (stops[Number(slider.value)] !== position) return; // the slider moved on meanwhile
    const s = answer.state;
    out.dataset.position = String(position);
    out.replaceChildren(s ? el("div", { class: "kv" },
      [["event", mark ? mark.label : ""], ["status", s.status], ["incarnation", s.incarnation], ["last step", fmt(s.last_step)], ["steps", s.steps],
        ["preempting", s.preempting], ["exit code", fmt(s.exit_code)], ["summary", fmt(s.summary)]].map(([k, v]) => [el("div", { text: k }), el("div", { class: k === "status" ? "status " + v : "", "data-field": k, text: fmt(v) })]))
      : el("p", { class: "empty", text: "the run did not exist yet" }));
  };
  slider.addEventListener("input", () => {
    label.textContent = "#" + stops[Number(slider.value)];
    clearTimeout(timer);
    timer = setTimeout(() => show().catch(showError), 120);
  });
  section.append(el("h3", { text: "State as of a log position" }), el("div", { class: "bar" }, slider, label), out);
  show().catch(showError);
  section.append(el("h3", { text: "Events" }), el("table", { id: "marks" }, el("thead", {}, el("tr", {}, ["position", "time", "what", "incarnation", "after step"].map((h) => el("th", { text: h })))),
    el("tbody", {}, line.marks.map((m) => el("tr", { "data-kind": m.kind },
      el("td", {}, el("a", { href: "#/audit?from=" + m.position, text: "#" + m.position })), el("td", { text: fmtTime(m.recorded_at_us) }),
      el("td", { class: "kind-" + m.kind, text: m.label }), el("td", { text: fmt(m.incarnation) }), el("td", { text: fmt(m.step) }))))));
  return section;
}

// --- sweeps ---------------------------------------------------------------------------
async function sweepsPage(view) {
  const box = el("section", {}, el("h2", { text: "Sweeps" }));
  view.append(box);
  const load = async () => {
    const page = await getJSON("/api/sweeps?order=newest&limit=500");
    box.replaceChildren(el("h2", { text: "Sweeps" }), el("table", { id: "sweeps" },
      el("thead", {}, el("tr", {}, ["sweep", "project", "status", "method", "runs", "queued"].map((h) => el("th", { text: h })))),
      el("tbody", {}, page.items.map((s) => el("tr", { "data-sweep": s.sweep_id },
        el("td", {}, el("a", { href: "#/sweep/" + enc(s.sweep_id), text: s.sweep_id })), el("td", { text: s.project }),
        el("td", { class: "status " + s.status, text: s.status }), el("td", { text: s.method }),
        el("td", { class: "num", text: Object.values(s.counts).reduce((a, b) => a + b, 0) }), el("td", { class: "num queued", text: s.queue.length }))))));
  };
  await load();
  every(load, REFRESH_MS);
}

async function sweepPage(view, sweepId) {
  const box = el("div", { id: "sweep" });
  view.append(box);
  const message = el("span", { id: "sweep-message", class: "message" });
  const control = async (action) => {
    const token = $("token").value.trim();
    const headers = token ? { Authorization: "Bearer " + token } : {};
    const response = await fetch("/api/sweeps/" + enc(sweepId) + "/" + action, { method: "POST", headers });
    const body = await response.json();
    if (response.ok) { message.className = "message done"; message.textContent = `${action}: now ${body.status}`; }
    else { message.className = "message refused"; message.textContent = `${action} refused (${response.status}): ${body.detail}`; }
    await load();
  };
  const load = async () => {
    const s = await getJSON("/api/dash/sweeps/" + enc(sweepId));
    const runRow = (r) => el("tr", { "data-run": r.run_id, class: s.best && s.best.run_id === r.run_id ? "best" : "" },
      el("td", {}, el("a", { href: runHash(s.project, r.run_id), text: r.run_id })), el("td", { class: "status " + r.status, text: r.status }),
      s.parameters.map((p) => el("td", { class: "num", text: fmt(r.params[p]) })), el("td", { class: "num metric", text: fmt(r.metric) }),
      el("td", { class: "num", text: r.steps }), el("td", { text: r.queued ? "queued" : "" }));
    box.replaceChildren(
      el("section", {},
        el("h2", {}, "Sweep ", el("span", { id: "sweep-id", text: s.sweep_id }), " ", el("span", { id: "sweep-status", class: "status " + s.status, text: s.status })),
        el("div", { class: "kv" }, [["project", s.project], ["method", s.method], ["metric", s.metric ? `${s.metric} (${s.goal})` : "none"], ["run cap", fmt(s.run_cap)],
          ["runs by status", fmt(s.counts)], ["agents", s.agents.join(", ")], ["claims", fmt(s.claims)]].map(([k, v]) => [el("div", { text: k }), el("div", { text: fmt(v) })])),
        el("div", { class: "bar", style: "margin-top: 8px" }, ["pause", "resume", "stop", "cancel"].map((a) => el("button", { id: "sweep-" + a, text: a, onclick: () => control(a).catch(showError) })), message),
        el("p", { class: "muted", text: "The controls need the server's token (top right); without it the server refuses them." })),
      el("section", { id: "sweep-best" }, el("h2", { text: "Best run so far" }),
        s.best ? el("p", {}, el("a", { href: runHash(s.project, s.best.run_id), text: s.best.run_id }), ` ${s.metric} = ${fmt(s.best.metric)} with ${fmt(s.best.params)}`) : el("p", { class: "empty", text: "no run has reported the metric yet" })),
      el("section", {}, el("h2", { text: "Queue" }), el("div", { class: "muted", text: "Preempted runs waiting for an agent, oldest first:" }),
        el("ol", { id: "sweep-queue" }, s.queue.map((id) => { const r = s.runs.find((x) => x.run_id === id); return el("li", { "data-run": s.project + "/" + id, text: `${id} (${r ? r.status : "?"}, ${r ? r.steps : 0} steps)` }); }))),
      el("section", { id: "parcoords-section" }, el("h2", { text: "Parameters against the metric" }), parallelCoordinates(s)),
      el("section", {}, el("h2", { text: "Runs" }), el("table", { id: "sweep-runs" },
        el("thead", {}, el("tr", {}, el("th", { text: "run" }), el("th", { text: "status" }), s.parameters.map((p) => el("th", { text: p })), el("th", { text: s.metric || "metric" }), el("th", { text: "steps" }), el("th", {}))),
        el("tbody", {}, s.runs.map(runRow)))));
  };
  await load();
  every(load, REFRESH_MS * 2);
}

function parallelCoordinates(s) {
  const axes = [...s.parameters, ...(s.metric ? [s.metric] : [])];
  const runs = s.runs;
  if (!axes.length || !runs.length) return el("p", { class: "empty", text: "no runs with parameters yet" });
  const W = 900, H = 260, T = 24, B = 24, L = 40, R = 40;
  const value = (r, a) => (a === s.metric && !s.parameters.includes(a) ? r.metric : r.params[a]);
  const scale = axes.map((a) => {
    const vals = runs.map((r) => value(r, a)).filter((v) => v !== undefined && v !== null);
    if (vals.every((v) => typeof v === "number")) {
      const lo = Math.min(...vals), hi = Math.max(...vals);
      const logish = lo > 0 && hi / lo > 100;
      const f = logish ? Math.log10 : (v) => v;
      return { pos: (v) => (hi === lo ? 0.5 : (f(v) - f(lo)) / (f(hi) - f(lo))), lo: fmt(lo), hi: fmt(hi) };
    }
    const cats = [...new Set(vals.map(String))].sort();
    return { pos: (v) => (cats.length < 2 ? 0.5 : cats.indexOf(String(v)) / (cats.length - 1)), lo: cats[0], hi: cats[cats.length - 1] };
  });
  const ax = (i) => L + (axes.length === 1 ? 0.5 : i / (axes.length - 1)) * (W - L - R);
  const ay = (p) => H - B - p * (H - T - B);
  const metrics = runs.map((r) => r.metric).filter((m) => m !== null);
  const mlo = Math.min(...metrics), mhi = Math.max(...metrics);
  const color = (m) => {
    if (m === null || !metrics.length) return "#bbb";
    let t = mhi === mlo ? 0.5 : (m - mlo) / (mhi - mlo);
    if (s.goal === "minimize") t = 1 - t;
    return `hsl(${Math.round(10 + 110 * t)}, 70%, 42%)`; // red (worse) to green (better)
  };
  const parts = [];
  axes.forEach((a, i) => {
    parts.push(svg("line", { class: "axis", x1: ax(i), x2: ax(i), y1: T, y2: H - B }),
      svg("text", { x: ax(i), y: 12, "text-anchor": "middle" }, a),
      svg("text", { x: ax(i) + 3, y: H - B + 12 }, scale[i].lo ?? ""), svg("text", { x: ax(i) + 3, y: T + 8 }, scale[i].hi ?? ""));
  });
  for (const r of runs) {
    const pts = axes.map((a, i) => { const v = value(r, a); return v === undefined || v === null ? null : [ax(i), ay(scale[i].pos(v))]; });
    const d = pts.map((p, i) => (p ? (i && pts[i - 1] ? "L" : "M") + p[0].toFixed(1) + " " + p[1].toFixed(1) : "")).join("");
    parts.push(svg("path", { d, stroke: color(r.metric), "data-run": r.run_id }, svg("title", {}, `${r.run_id}: ${fmt(r.params)} \u2192 ${fmt(r.metric)}`)));
  }
  return svg("svg", { class: "parcoords", id: "parcoords", viewBox: `0 0 ${W} ${H}`, width: "100%", height: H, "data-lines": runs.length }, parts);
}

// --- audit ----------------------------------------------------------------------------
async function auditPage(view, q) {
  const from = Math.max(1, Number(q.get("from") || 1));
  const limit = 100;
  const verifyOut = el("div", { id: "verify-out" });
  const verifyButton = el("button", { id: "verify", text: "verify the log", onclick: async () => {
    verifyButton.disabled = true;
    verifyOut.textContent = "checking\u2026";
    try {
      const r = await getJSON("/api/dash/verify");
      verifyOut.dataset.ok = String(r.ok);
      verifyOut.replaceChildren(el("p", { class: r.ok ? "message done" : "message refused",
        text: r.ok ? `intact: ${r.checked} events checked, the read model equals a replay` : `damaged from position ${r.first_bad_position}: ${fmt(r.fault || r.projection_differences || r.replay_error)}` }));
    } catch (error) { verifyOut.textContent = String(error.message || error); }
    verifyButton.disabled = false;
  } });
  const runInput = el("input", { id: "explain-run", placeholder: "project/run", value: q.get("run") || "" });
  const explainOut = el("pre", { id: "explain-out" });
  const explainRun = async () => {
    const name = runInput.value.trim();
    const slash = name.indexOf("/");
    if (slash < 0) { explainOut.textContent = "give the run as project/run"; return; }
    const r = await getJSON("/api/dash/explain/" + enc(name.slice(0, slash)) + "/" + enc(name.slice(slash + 1)));
    explainOut.textContent = r.lines.join("\n");
  };
  const page = await getJSON(`/api/log?from=${from}&limit=${limit}`);
  const go = (p) => { location.hash = "#/audit?from=" + Math.max(1, p) + (q.get("run") ? "&run=" + enc(q.get("run")) : ""); };
  const posInput = el("input", { type: "number", id: "log-from", min: 1, value: from, style: "width: 100px" });
  view.append(
    el("div", { class: "cols" },
      el("section", {}, el("h2", { text: "Verify" }), el("p", { class: "muted", text: "Checks every event's hash chain and that the read model equals a replay of the log." }), verifyButton, verifyOut),
      el("section", {}, el("h2", { text: "Explain a run" }), el("div", { class: "bar" }, runInput, el("button", { id: "explain", text: "explain", onclick: () => explainRun().catch(showError) })), explainOut)),
    el("section", {}, el("h2", { text: "The log" }),
      el("div", { class: "bar" }, el("button", { text: "\u2190 earlier", disabled: from <= 1, onclick: () => go(from - limit) }),
        el("label", {}, "from position ", posInput), el("button", { text: "go", onclick: () => go(Number(posInput.value)) }),
        el("button", { text: "later \u2192", disabled: page.next > page.head, onclick: () => go(page.next) }), el("span", { class: "muted", text: `head ${page.head}` })),
      el("table", { id: "log" }, el("thead", {}, el("tr", {}, ["position", "recorded", "stream", "version", "type", "data"].map((h) => el("th", { text: h })))),
        el("tbody", {}, page.events.map((e) => el("tr", { "data-position": e.position, class: e.position === from ? "selected" : "" },
          el("td", { class: "num", text: e.position }), el("td", { text: fmtTime(e.recorded_at_us) }),
          el("td", {}, e.stream.startsWith("run:") ? el("a", { href: "#/run/" + e.stream.slice(4).split("/").map(enc).join("/"), text: e.stream }) : e.stream.startsWith("sweep:") ? el("a", { href: "#/sweep/" + enc(e.stream.slice(6)), text: e.stream }) : e.stream),
          el("td", { class: "num", text: e.version }), el("td", { text: e.type }), el("td", { class: "data", text: JSON.stringify(e.data).slice(0, 300) })))))));
  if (q.get("run")) await explainRun();
}

route();
