// cellseq dashboard: glue between the server's JSON and server-sent events and uPlot.
// Pages: #/ (every run), #/run/RUN (a run: its cells, results, journal),
// #/run/RUN/cell/CELL (a cell: live plots, results, journal). Text from the server is set as
// text, never parsed as HTML.
"use strict";

const S = {
  token: null, stream: null, page: null, pending: {}, lastEvent: {},
};
const QTY = {
  voltage_V: {label: "V / V", scale: 1, color: "#1f77b4"},
  current_A: {label: "I / mA", scale: 1e3, color: "#d62728"},
  temperature_C: {label: "T / degC", scale: 1, color: "#2ca02c"},
};

// -- small helpers ---------------------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const fmt = (v, digits, scale = 1) => (v === null || v === undefined) ? "" :
  (v * scale).toFixed(digits);
function sig(v, n = 4, scale = 1) {
  if (v === null || v === undefined) return "";
  const x = v * scale;
  if (x !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e6)) return x.toExponential(n - 1);
  return Number(x.toPrecision(n)).toString();
}
// axis ticks: tiny or huge values in exponent form, others as short numbers
const ticks = (u, splits) => splits.map((v) => v === null ? "" : sig(v, 4));

// A line is broken where points are far apart for their trace (a soak between two rests
// records nothing): a gap of more than ten times the usual spacing.
function withGaps(t, y) {
  if (t.length < 3) return [t, y];
  const d = [];
  for (let i = 1; i < t.length; i++) d.push(t[i] - t[i - 1]);
  const usual = [...d].sort((a, b) => a - b)[Math.floor(d.length / 2)];
  const xs = [t[0]], ys = [y[0]];
  for (let i = 1; i < t.length; i++) {
    if (usual > 0 && d[i - 1] > 10 * usual) { xs.push((t[i] + t[i - 1]) / 2); ys.push(null); }
    xs.push(t[i]); ys.push(y[i]);
  }
  return [xs, ys];
}
const hours = (s) => (s === null || s === undefined) ? "" : (s / 3600).toFixed(2);
const enc = encodeURIComponent;

function notice(text, error = false) {
  const el = document.getElementById("notice");
  el.textContent = text;
  el.className = error ? "error" : "";
}

async function api(path, options = {}) {
  const res = await fetch(path, {credentials: "same-origin", ...options});
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok) throw new Error((body && body.error) || `${res.status} ${res.statusText}`);
  return body;
}

// -- who and the token -------------------------------------------------------------------
function setupIdentity() {
  const params = new URLSearchParams(location.search);
  if (params.get("token")) {
    sessionStorage.setItem("cellseq-token", params.get("token"));
    history.replaceState(null, "", location.pathname + location.hash);   // out of the bar
  }
  S.token = sessionStorage.getItem("cellseq-token");
  const who = document.getElementById("who");
  who.value = localStorage.getItem("cellseq-who") || "";
  who.addEventListener("change", () => localStorage.setItem("cellseq-who", who.value.trim()));
  const input = document.getElementById("token-input");
  input.addEventListener("change", () => {
    S.token = input.value.trim() || null;
    if (S.token) sessionStorage.setItem("cellseq-token", S.token);
    showToken();
  });
  showToken();
}

function showToken() {
  const state = document.getElementById("token-state");
  const input = document.getElementById("token-input");
  state.textContent = S.token ? "controls: token given" : "controls need the token";
  input.hidden = !!S.token;
}

async function control(runId, action, cell) {
  const what = `${action} ${cell ? "cell " + cell : "the run"}`;
  if (!S.token) {
    notice(`${what}: the token printed when the dashboard started is needed (enter it above)`,
           true);
    return;
  }
  if (action === "stop" && !confirm(cell ?
      `Stop ${cell} now? Its output goes off; Continue carries its step on.` :
      `Stop run ${runId}? Every output goes off; cellseq resume continues it.`)) return;
  const who = document.getElementById("who").value.trim() || "someone";
  try {
    const got = await api(`/api/runs/${enc(runId)}/control`, {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-Cellseq-Token": S.token},
      body: JSON.stringify({action, cell, who}),
    });
    if (got.answer) {   // answered at once (a lab run's cancel)
      notice(`${what}: ${got.answer}`);
      return;
    }
    S.pending[got.request] = {what, runId};
    notice(`${what}: asked; waiting for the run to answer`);
    checkAnswers(runId);
  } catch (e) {
    notice(`${what}: ${e.message}`, true);
  }
}

async function checkAnswers(runId) {
  if (!Object.values(S.pending).some((p) => p.runId === runId)) return;
  const after = S.lastEvent[runId] ?? -1;
  const got = await api(`/api/runs/${enc(runId)}/events?after=${after < 0 ? -1 : after}` +
                        "&limit=200");
  for (const e of got.events) {
    const p = S.pending[e.data && e.data.request];
    if (p && e.kind === "control_request") {
      notice(`${p.what}: ${e.data.refused ? "refused: " : ""}${e.data.response}`,
             e.data.refused);
      delete S.pending[e.data.request];
    }
  }
}

function controlButtons(runId, cell, live) {
  if (!live) return h("span", {class: "muted"}, cell ? "" : "no process runs it: no controls");
  const b = (action, label) => h("button", {
    class: action, "data-action": action, "data-cell": cell || "",
    onclick: () => control(runId, action, cell)}, label);
  return h("span", {class: "controls"}, b("pause", "Pause"), b("continue", "Continue"),
           b("stop", "Stop"));
}

// -- live updates ----------------------------------------------------------------------
function listen(runId, onChange) {
  if (S.stream) S.stream.close();
  const es = new EventSource("/api/stream" + (runId ? `?run=${enc(runId)}` : ""));
  const link = document.getElementById("link");
  es.onopen = () => link.classList.add("live");
  es.onerror = () => link.classList.remove("live");
  es.addEventListener("change", (ev) => onChange(JSON.parse(ev.data)));
  S.stream = es;
}

// -- tables ----------------------------------------------------------------------------
const STANDOUT = ["faulted", "suspended", "paused"];

function cellTable(ov) {
  const runId = ov.run.id;
  // faulted, suspended and paused cells first: they need someone's attention
  const rank = (c) => { const k = STANDOUT.indexOf(c.state); return k < 0 ? STANDOUT.length : k; };
  const cells = [...ov.cells].sort((a, b) => rank(a) - rank(b));
  const rows = cells.map((c) => h("tr", {
    class: STANDOUT.includes(c.state) ? c.state : null, "data-cell": c.cell,
    "data-state": c.state},
    h("td", {}, h("a", {href: `#/run/${enc(runId)}/cell/${enc(c.cell)}`}, c.cell)),
    h("td", {}, h("span", {class: `badge ${c.state}`}, c.state)),
    h("td", {}, c.experiment || ""),
    h("td", {}, c.step === null ? "" : `${c.step} ${(c.step_kind || "").replaceAll("_", " ")}`),
    h("td", {class: "num"}, c.cycle ?? ""),
    h("td", {class: "num", "data-q": "voltage"}, fmt(c.voltage_V, 4)),
    h("td", {class: "num", "data-q": "current"}, sig(c.current_A, 4, 1e3)),
    h("td", {class: "num", "data-q": "temperature"}, fmt(c.temperature_C, 1)),
    h("td", {class: "num"}, hours(c.t_s)),
    h("td", {class: "fault", title: c.fault || ""}, c.fault || ""),
    h("td", {}, controlButtons(runId, c.cell,
                               ov.run.live && !["completed", "faulted"].includes(c.state)))));
  return h("table", {class: "cells"},
    h("thead", {}, h("tr", {}, ["cell", "state", "experiment", "step", "loop cycle", "V / V",
                                "I / mA", "T / degC", "t / h", "fault", ""].map(
                                  (t) => h("th", {}, t)))),
    h("tbody", {}, rows));
}

function runCard(ov, linkTitle = true) {
  const r = ov.run;
  const count = (state) => ov.cells.filter((c) => c.state === state).length;
  const counts = h("div", {class: "counts"},
    h("span", {}, `${ov.cells.length} cells`),
    ...["running", "paused", "suspended", "faulted"].filter(count).map(
      (s) => h("span", {class: `badge ${s}`}, `${count(s)} ${s}`)));
  const title = linkTitle ? h("a", {href: `#/run/${enc(r.id)}`}, r.id) : r.id;
  return h("section", {class: "card run", "data-run": r.id},
    h("h2", {}, title, " ", h("span", {class: "muted"}, r.campaign || ""), " ",
      h("span", {class: `badge ${r.status}`, "data-status": r.status}, r.status),
      r.speed ? h("span", {class: "muted"}, ` dry run paced x${r.speed}`) : "",
      " ", controlButtons(r.id, null, r.live)),
    counts, cellTable(ov));
}

// -- pages -----------------------------------------------------------------------------
async function overviewPage(main) {
  crumbs([]);
  const list = await api("/api/runs");
  main.replaceChildren(h("p", {class: "muted"}, list.runs.length ? "" : "no runs yet"));
  const cards = {};
  for (const r of list.runs) {
    try {
      const ov = await api(`/api/runs/${enc(r.id)}`);
      cards[r.id] = runCard(ov);
    } catch (e) {
      cards[r.id] = h("section", {class: "card"}, h("h2", {}, r.id), e.message);
    }
    main.append(cards[r.id]);
  }
  await painted("overview");
  listen(null, (changes) => {
    for (const [runId, ov] of Object.entries(changes)) {
      if (ov.error) continue;
      const card = runCard(ov);
      if (cards[runId]) cards[runId].replaceWith(card); else main.append(card);
      cards[runId] = card;
      checkAnswers(runId);
    }
  });
}

async function runPage(main, runId) {
  crumbs([[runId, `#/run/${enc(runId)}`]]);
  let ov = await api(`/api/runs/${enc(runId)}`);
  const card = {el: runCard(ov, false)};
  const results = h("section", {class: "card"}, h("h2", {}, "Results"));
  const journal = h("div", {class: "journal"});
  main.replaceChildren(card.el, results, h("section", {class: "card"},
                       h("h2", {}, "Journal"), journal));
  await showResults(results, runId, null);
  await appendJournal(journal, runId, null);
  await painted("run");
  listen(runId, async (changes) => {
    if (!changes[runId] || changes[runId].error) return;
    ov = changes[runId];
    const el = runCard(ov, false);
    card.el.replaceWith(el);
    card.el = el;
    await appendJournal(journal, runId, null);
    checkAnswers(runId);
  });
}

async function appendJournal(box, runId, cell) {
  const key = runId + "/" + (cell || "");
  const after = box.dataset.after ?? -1;
  const got = await api(`/api/runs/${enc(runId)}/events?after=${after}&limit=300` +
                        (cell ? `&cell=${enc(cell)}` : ""));
  for (const e of got.events) {
    const when = new Date(e.utc * 1000).toISOString().replace("T", " ").slice(0, 19);
    const kind = e.kind.startsWith("control") ? "control" :
      (/fault|trip|abort|fail/.test(e.kind) ? "fault" : "");
    box.append(h("div", {class: kind}, `${when} t=${hours(e.t)} h ${e.kind}` +
                 `${e.cell ? " [" + e.cell + "]" : ""}: ${e.message}`));
    box.dataset.after = e.id;
    if (!cell) S.lastEvent[runId] = e.id;
  }
  if (got.events.length) box.scrollTop = box.scrollHeight;
  return key;
}

// Long tables (a result per cycle for 1000 cycles) are cut: the report has them all.
const ROWS = 50;
function cut(rows, what) {
  return rows.length <= ROWS ? [rows, null] : [rows.slice(0, ROWS), h("p", {class: "muted"},
    `... and ${rows.length - ROWS} more ${what} (the run's report/summary.json has them all)`)];
}

async function showResults(box, runId, cell) {
  const r = await api(`/api/runs/${enc(runId)}/results` + (cell ? `?cell=${enc(cell)}` : ""));
  const mine = (x) => !cell || x.cell === cell;
  const cond = (c) => Object.entries(c || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  if (!r.has_report) {
    box.append(h("p", {class: "muted"}, "no report yet (cellseq report writes it when the run" +
                 " ends)"));
  }
  if (r.outcome && r.outcome.status) {
    box.append(h("p", {}, "run ", h("span", {class: `badge ${r.outcome.status}`},
                                    r.outcome.status)));
  }
  for (const n of r.notes || []) box.append(h("p", {class: "muted"}, n));
  const [checks, moreChecks] = cut((r.checks || []).filter(mine), "checks");
  if (checks.length) {
    box.append(h("h3", {}, "Expected values"), h("table", {class: "checks"},
      h("thead", {}, h("tr", {}, ["cell", "quantity", "conditions", "expected", "measured",
                                  "difference", "tolerance", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, checks.map((c) => h("tr", {"data-status": c.status},
        h("td", {}, c.cell || ""), h("td", {}, c.quantity), h("td", {}, cond(c.conditions)),
        h("td", {class: "num"}, `${sig(c.expected)} ${c.unit || ""}`),
        h("td", {class: "num"}, c.measured === null ? "" : `${sig(c.measured)} ${c.unit || ""}`),
        h("td", {class: "num"}, c.relative_difference === null ? "" :
          `${(100 * c.relative_difference).toFixed(1)} %`),
        h("td", {class: "num"}, `${(100 * c.tolerance).toFixed(0)} %`),
        h("td", {}, h("span", {class: `badge ${c.status === "pass" ? "pass" : "fail"}`},
                      c.status)))))), moreChecks);
  } else if (!r.has_report && (r.expected || []).filter(mine).length) {
    box.append(h("h3", {}, "Expected values (not yet measured)"), h("table", {},
      h("tbody", {}, r.expected.filter(mine).map((x) => h("tr", {},
        h("td", {}, x.cell || ""), h("td", {}, x.quantity), h("td", {}, cond(x.conditions)),
        h("td", {class: "num"}, `${sig(x.value)} ${x.unit || ""}`))))));
  }
  const [results, moreResults] = cut((r.results || []).filter(mine), "results");
  if (results.length) {
    box.append(h("h3", {}, "Results"), h("table", {class: "results"},
      h("thead", {}, h("tr", {}, ["experiment", "cell", "quantity", "value", "conditions"].map(
        (t) => h("th", {}, t)))),
      h("tbody", {}, results.map((x) => h("tr", {},
        h("td", {}, x.experiment), h("td", {}, x.cell), h("td", {}, x.quantity),
        h("td", {class: "num"}, x.value === null ? `- (${x.note || "no value"})` :
          `${sig(x.value)} ${x.unit}`),
        h("td", {}, cond(x.conditions)))))), moreResults);
  }
  if (!cell) {
    for (const name of r.figures || []) {
      box.append(h("figure", {}, h("img", {src: `/api/runs/${enc(runId)}/figures/${enc(name)}`,
                                           alt: name, loading: "lazy"})));
    }
  }
}

// -- the cell page: live plots ---------------------------------------------------------
function chartWidth(el) { return Math.max(300, Math.floor(el.clientWidth - 10)); }

async function cellPage(main, runId, cell) {
  crumbs([[runId, `#/run/${enc(runId)}`], [cell, `#/run/${enc(runId)}/cell/${enc(cell)}`]]);
  // the series is asked for with the run's state, not after it (the plots' width: main's
  // content box, as laid out below; checked before the answer is used)
  const seriesUrl = (w, range = "") =>
    `/api/runs/${enc(runId)}/cells/${enc(cell)}/series?width=${w}${range}`;
  const early = {width: chartWidth({clientWidth: main.clientWidth - 32}), answer: null};
  early.answer = api(seriesUrl(early.width));
  early.answer.catch(() => null);   // a refusal is reported by the request made instead
  let ov = await api(`/api/runs/${enc(runId)}`);
  let row = ov.cells.find((c) => c.cell === cell);
  if (!row) throw new Error(`run ${runId} has no cell ${cell}`);
  const head = {el: null};
  const latest = h("p", {id: "latest"});
  const shown = h("p", {class: "muted", id: "shown"});
  const plots = h("div", {class: "charts"});
  const lower = h("div", {class: "pair"});
  const results = h("section", {class: "card"}, h("h2", {}, "Results"));
  const journal = h("div", {class: "journal"});
  const drawHead = () => {
    const el = h("section", {class: "card"},
      h("h2", {}, cell, " ", h("span", {class: `badge ${row.state}`, id: "cell-state"},
                               row.state), " ", controlButtons(runId, cell, ov.run.live &&
        !["completed", "faulted"].includes(row.state))),
      h("p", {}, `${row.experiment || ""} step ${row.step ?? "-"} ` +
        `${(row.step_kind || "").replaceAll("_", " ")}, loop cycle ${row.cycle ?? "-"}`),
      row.fault ? h("p", {class: "fault"}, row.fault) : "");
    if (head.el) head.el.replaceWith(el); else main.prepend(el);
    head.el = el;
  };
  main.replaceChildren(latest, h("p", {class: "muted"}, "Drag across a plot to zoom (every " +
    "point once few enough are in view); double-click for the whole run. ",
    h("button", {id: "full", onclick: () => zoom(null)}, "whole run")), shown, plots, lower,
    results, h("section", {class: "card"}, h("h2", {}, "Journal"), journal));
  drawHead();

  // V-t, I-t, T-t: one uPlot each, x (hours) zoomed together
  let view = null;          // null: the whole run, following it live; else [t0_s, t1_s]
  const charts = {};
  const width = chartWidth(plots);
  for (const [q, meta] of Object.entries(QTY)) {
    const el = h("div", {class: "chart", "data-q": q});
    plots.append(el);
    charts[q] = new uPlot({
      width, height: 190, legend: {show: false},
      scales: {x: {time: false}},
      series: [{label: "t / h"}, {label: meta.label, stroke: meta.color, width: 1,
                                  points: {show: false}}],
      axes: [{label: "test time / h"}, {label: meta.label, size: 80, values: ticks}],
      cursor: {sync: {key: "cellseq"}, drag: {x: true, y: false, setScale: false},
               bind: {dblclick: () => () => { zoom(null); return null; }}},
      hooks: {setSelect: [(u) => {
        if (u.select.width < 2) return;
        const a = u.posToVal(u.select.left, "x") * 3600;
        const b = u.posToVal(u.select.left + u.select.width, "x") * 3600;
        u.setSelect({left: 0, top: 0, width: 0, height: 0}, false);
        zoom([a, b]);
      }]},
    }, [[], []], el);
  }
  // A long run's first view: the server reads its points over several requests and answers
  // each with what it has read so far (complete false); the plots fill in until complete.
  let fetching = null, again = false;
  async function drawSeries() {
    if (fetching) { again = true; return fetching; }
    fetching = (async () => {
      const w = chartWidth(plots);
      const range = view ? `&t0=${view[0]}&t1=${view[1]}` : "";
      const asked = early.answer && !view && w === early.width ? early.answer : null;
      early.answer = null;
      const s = (asked && await asked.catch(() => null)) || await api(seriesUrl(w, range));
      let n = 0;
      for (const [q, meta] of Object.entries(QTY)) {
        const tr = s.traces[q];
        n += tr.t.length;
        charts[q].setData(withGaps(tr.t.map((t) => t / 3600), tr.y.map((y) => y * meta.scale)));
        if (!s.complete && s.t_first_s !== null) {   // the axis over the whole run already
          charts[q].setScale("x", {min: s.t0_s / 3600, max: s.t1_s / 3600});
        }
      }
      const v = s.traces.voltage_V;
      if (!s.complete) {
        latest.textContent = "reading the run's points: the latest are plotted once read";
      } else if (v.t.length) {
        const i = v.t.length - 1;
        latest.textContent = `latest plotted point: t = ${hours(v.t[i])} h, ` +
          `V = ${v.y[i].toFixed(4)} V`;
        latest.dataset.t = v.t[i];
        latest.dataset.v = v.y[i];
      }
      shown.textContent = (s.complete ? "" : `reading the run's points: ` +
        `${(s.points_in_view / 1e6).toFixed(1)} of ${(s.points_total / 1e6).toFixed(1)} M so ` +
        "far; ") + `${s.points_in_view} points in view; ` +
        (s.every_point ? "every point drawn" : `min and max of each of ${w} pixel columns`);
      shown.dataset.points = s.points_in_view;
      shown.dataset.everyPoint = s.every_point;
      shown.dataset.drawn = n;
      shown.dataset.complete = s.complete;
      return s.complete;
    })();
    try { return await fetching; } finally {
      fetching = null;
      if (again) { again = false; drawSeries(); }
    }
  }
  async function zoom(range) {
    view = range && range[1] > range[0] ? range : null;
    await drawSeries();
  }

  // capacity and CE per cycle; Nyquist of the latest spectra
  const capEl = h("div", {class: "chart"}), nyqEl = h("div", {class: "chart"});
  const capNote = h("p", {class: "muted"}), nyqNote = h("p", {class: "muted"});
  lower.append(h("div", {}, capEl, capNote), h("div", {}, nyqEl, nyqNote));
  const half = Math.max(300, Math.floor(lower.clientWidth / 2 - 20));
  const capacity = new uPlot({
    width: half, height: 240, title: "Capacity and coulombic efficiency per cycle",
    scales: {x: {time: false}, ce: {}},
    series: [{label: "cycle"},
             {label: "discharge", stroke: "#1f77b4", points: {show: true}},
             {label: "charge", stroke: "#ff7f0e", points: {show: true}},
             {label: "CE / %", stroke: "#2ca02c", scale: "ce", points: {show: true}}],
    axes: [{label: "cycle", incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]},
           {label: "capacity", values: ticks, size: 60},
           {side: 1, scale: "ce", label: "CE / %", grid: {show: false}, values: ticks}],
  }, [[], [], [], []], capEl);
  let nyquist = null, spectraShown = null;
  async function drawCycles() {
    const got = await api(`/api/runs/${enc(runId)}/cells/${enc(cell)}/cycles`);
    if (!got.complete) {   // cycles are counted once every point is read: none half-counted
      capEl.hidden = true;
      capNote.textContent = `counting cycles: ${(got.points_read / 1e6).toFixed(1)} of ` +
        `${(got.points_total / 1e6).toFixed(1)} M points read`;
      return false;
    }
    const rows = got.cycles.filter((r) => r.complete);   // a cycle under way: in the note
    const open = got.cycles.filter((r) => !r.complete);
    const specific = got.cycles.length && got.cycles[0].discharge_mAh_g !== null;
    const cap = (r, k) => specific ? `${sig(r[k + "_mAh_g"], 4)} mAh/g` :
      `${sig(r[k + "_Ah"], 4, 1e3)} mAh`;
    capacity.series[1].label = specific ? "discharge / mAh/g" : "discharge / mAh";
    capacity.setData([rows.map((r) => r.cycle),
      rows.map((r) => specific ? r.discharge_mAh_g : r.discharge_Ah * 1e3),
      rows.map((r) => specific ? r.charge_mAh_g : r.charge_Ah * 1e3),
      rows.map((r) => r.coulombic_efficiency === null ? null : 100 * r.coulombic_efficiency)]);
    capEl.dataset.cycles = rows.length;
    capEl.hidden = !rows.length;
    capNote.textContent = (rows.length ? "" : "no complete cycle (yet). ") + open.map((r) =>
      `Cycle ${r.cycle} may be under way: so far charged ${cap(r, "charge")}, discharged ` +
      `${cap(r, "discharge")}; it is plotted once the cell has moved on.`).join(" ");
    return true;
  }
  async function drawSpectra() {
    const text = JSON.stringify(
      await api(`/api/runs/${enc(runId)}/cells/${enc(cell)}/spectra?last=3`));
    if (text === spectraShown) return;   // no new spectrum: the plot stays as it is
    spectraShown = text;
    const got = JSON.parse(text);
    const colors = ["#9467bd", "#8c564b", "#e377c2"];
    if (nyquist) nyquist.destroy();
    nyquist = null;
    nyqEl.replaceChildren();
    nyqEl.dataset.spectra = got.spectra.length;
    nyqNote.textContent = got.spectra.length ? "" : "no impedance spectra (yet)";
    nyqEl.hidden = !got.spectra.length;
    if (!got.spectra.length) return;
    nyquist = new uPlot({
      mode: 2, width: half, height: 240, title: "Nyquist, latest spectra",
      scales: {x: {time: false}, y: {}},
      series: [{}, ...got.spectra.map((s, i) => ({
        label: `step ${s.step_count}` + (s.temperature_C === null ? "" :
          `, ${s.temperature_C.toFixed(0)} degC`), stroke: colors[i % 3],
        points: {show: true, size: 4}}))],
      axes: [{label: "Z' / Ohm", values: ticks}, {label: "-Z'' / Ohm", size: 70, values: ticks}],
    }, [null, ...got.spectra.map((s) => [s.z_real_ohm, s.z_imag_ohm.map((z) => -z)])], nyqEl);
  }

  // the time plots first: the cycles' first count (loading the analysis) waits for them
  const series = drawSeries();
  const cycles = series.then(() => untilComplete(drawCycles));
  await Promise.all([series.then(async (complete) => {
    await marked("cellseq-first-chart", "firstChart");
    if (!complete) await untilComplete(drawSeries);
  }), cycles,
                     drawSpectra(), showResults(results, runId, cell),
                     appendJournal(journal, runId, cell)]);
  await painted("cell");

  let seen = row;
  listen(runId, async (changes) => {
    const next = changes[runId];
    if (!next || next.error) return;
    ov = next;
    row = ov.cells.find((c) => c.cell === cell) || row;
    drawHead();
    const jobs = [appendJournal(journal, runId, cell), checkAnswers(runId)];
    if (row.t_s !== seen.t_s && view === null) jobs.push(drawSeries());
    if (row.step !== seen.step || row.cycle !== seen.cycle || row.state !== seen.state) {
      jobs.push(drawCycles(), drawSpectra());
    }
    seen = row;
    await Promise.all(jobs);
  });
}

// The page is drawn: after the next frame, so what was set up is on the screen. Marked for
// tests and the benchmark (performance mark "cellseq-painted", body[data-painted]; a cell
// page's first drawn plots: "cellseq-first-chart", body[data-first-chart]).
async function painted(kind) { await marked("cellseq-painted", "painted", kind); }

async function marked(name, key, value = "1") {
  await new Promise((resolve) => requestAnimationFrame(() => resolve()));
  performance.mark(name);
  document.body.dataset[key] = value;
}

// Calls fn (which answers whether what it drew is complete) until it is.
async function untilComplete(fn) {
  while (!(await fn())) await new Promise((resolve) => setTimeout(resolve, 50));
}

// -- routing ---------------------------------------------------------------------------
function crumbs(parts) {
  document.getElementById("crumbs").replaceChildren(
    ...parts.flatMap(([text, href]) => [" / ", h("a", {href}, text)]));
}

async function route() {
  if (S.stream) { S.stream.close(); S.stream = null; }
  delete document.body.dataset.painted;
  delete document.body.dataset.firstChart;
  const main = document.getElementById("main");
  main.replaceChildren();
  notice("");
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  try {
    if (parts[0] === "run" && parts[2] === "cell") await cellPage(main, parts[1], parts[3]);
    else if (parts[0] === "run" && parts[1]) await runPage(main, parts[1]);
    else await overviewPage(main);
  } catch (e) {
    notice(e.message, true);
  }
}

setupIdentity();
window.addEventListener("hashchange", route);
route();
