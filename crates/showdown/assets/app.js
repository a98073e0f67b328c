// The race page. It draws what the showdown server measured and sends; it
// measures nothing itself and invents nothing: no durations are typed in,
// nothing is animated to look right.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";
const LANES = ["sync", "async"];
let config = null;
let race = null;      // the current race, as the server last described it
let gauges = null;    // the last gauges event
let drawQueued = false;
let lastDraw = 0;

function fmt(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

// "1 message", "2 messages": a count with its noun.
function count(n, noun) {
  return `${n.toLocaleString("en")} ${noun}${n === 1 ? "" : "s"}`;
}

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function svgEl(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function scenarioEntry() {
  const n = Number($("#scenario").value);
  return config.scenarios.find((s) => s.number === n);
}

function say(text, error = false) {
  const status = $("#status");
  status.textContent = text;
  status.classList.toggle("error", error);
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  return { status: response.status, data };
}

// ---- controls -------------------------------------------------------------

function buildControls() {
  const select = $("#scenario");
  for (const s of config.scenarios) {
    select.append(el("option", { value: s.number }, `${s.number}. ${s.title}`));
  }
  select.value = "5";
  const counts = $("#counts");
  for (const n of config.counts) {
    const label = el("label");
    const input = el("input", { type: "radio", name: "count", value: n });
    if (n === 10) input.checked = true;
    label.append(input, ` ${n.toLocaleString("en")}`);
    counts.append(label);
  }
  select.addEventListener("change", () => { explain(); queueDraw(); });
  $("#race").addEventListener("click", startRace);
  $("#stop-following").addEventListener("click", async () => {
    const { status, data } = await api("POST", "/api/races/current/stop-following");
    if (status !== 200) say(data.detail || `stop following: ${status}`, true);
  });
  $("#ds-stop").addEventListener("click", () => downstream("stop"));
  $("#ds-start").addEventListener("click", () => downstream("start"));
  explain();
}

function explain() {
  const s = scenarioEntry();
  $("#explain-sync").textContent = s.sync;
  $("#explain-async").textContent = s.async;
  $("#seam").textContent = s.seam;
  const ds = s.downstream;
  const launchers = config.lanes.some((l) => l.launcher);
  $("#downstream-text").textContent = ds
    ? `Coupling: stop ${ds} in both stacks, race, then start it again.`
    : "This scenario has no dependency to stop.";
  for (const id of ["#ds-stop", "#ds-start"]) {
    const button = $(id);
    button.hidden = !ds || !launchers;
    button.textContent = `${id === "#ds-stop" ? "Stop" : "Start"} ${ds || ""}`;
  }
  const hint = $("#hint");
  hint.hidden = !ds || launchers;
  if (ds) $("code", hint).textContent = config.stop_hint.replaceAll("{service}", ds);
  showDownstreamState();
}

function showDownstreamState() {
  if (!$("#scenario").value) return;
  const ds = scenarioEntry().downstream;
  const text = ds
    ? config.lanes
        .map((lane) => {
          const svc = (lane.services || []).find((x) => x.name === ds);
          return `${lane.mode}: ${svc ? svc.state : "no launcher"}`;
        })
        .join(", ")
    : "";
  $("#downstream-state").textContent = text ? `(${ds} — ${text})` : "";
}

async function refreshConfig() {
  const response = await fetch("/api/config");
  config = await response.json();
  showDownstreamState();
}

async function downstream(action) {
  const ds = scenarioEntry().downstream;
  say(`${action === "stop" ? "Stopping" : "Starting"} ${ds} in both stacks…`);
  const { status, data } = await api("POST", `/api/downstream/${ds}/${action}`);
  if (status !== 200) {
    say(data.detail || `${action}: ${status}`, true);
  } else {
    const parts = data.lanes.map((l, i) => `${LANES[i]}: ${l.state || l.error}`);
    say(`${ds} ${action === "stop" ? "stopped" : "started"} (${parts.join(", ")})`);
  }
  await refreshConfig();
}

async function startRace() {
  const count = Number($("input[name=count]:checked").value);
  const scenario = Number($("#scenario").value);
  const { status, data } = await api("POST", "/api/races", { scenario, count });
  if (status !== 202) say(data.detail || `the race was refused (${status})`, true);
}

// ---- events ---------------------------------------------------------------

function connect() {
  const source = new EventSource("/api/events");
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    switch (event.type) {
      case "hello":
      case "race":
        race = event.race;
        break;
      case "rows":
        if (!race || race.id !== event.race) return resync();
        for (const { lane, i, row } of event.rows) race.lanes[lane].rows[i] = row;
        event.summaries.forEach((s, i) => { race.lanes[i].summary = s; });
        race.state = event.state;
        race.notes = event.notes;
        break;
      case "gauges":
        gauges = event;
        // A sample of this race, unless the race itself (sent after the
        // sample was taken) already holds it.
        if (race && event.t !== null && event.race === race.id
            && !race.timeline.some((s) => s.t === event.t)) {
          race.timeline.push({
            t: event.t,
            async_depth: event.async ? event.async.queues.reduce((n, q) => n + q.ready, 0) : null,
          });
        }
        break;
      case "downstream":
        refreshConfig();
        break;
      case "resync":
        return resync();
    }
    queueDraw();
  };
}

async function resync() {
  const response = await fetch("/api/races/current");
  if (response.ok) race = await response.json();
  queueDraw();
}

// ---- drawing --------------------------------------------------------------

function queueDraw() {
  if (drawQueued) return;
  drawQueued = true;
  // A big race redraws less often: its figures still arrive ten times a second.
  const every = race && race.count > 100 ? 400 : 150;
  const wait = Math.max(0, every - (performance.now() - lastDraw));
  setTimeout(() => requestAnimationFrame(() => {
    drawQueued = false;
    lastDraw = performance.now();
    draw();
  }), wait);
}

function draw() {
  const active = race && race.state !== "done";
  // For people and tests alike: which race the page shows, and where it is.
  document.body.dataset.race = race ? race.id : "";
  document.body.dataset.state = race ? race.state : "";
  $("#race").disabled = !!active;
  $("#stop-following").hidden = !(race && race.state === "following");
  if (race) {
    const s = config.scenarios[race.scenario - 1];
    const pending = race.lanes.reduce((n, l) => n + (l.summary ? l.summary.pending : 0), 0);
    const words = {
      sending: "sending to both stacks…",
      following: `following ${pending} accepted async operations to their end…`,
      reconciling: "reading every accepted operation back from the stacks…",
      done: "done",
    };
    if (!$("#status").classList.contains("error") || active) {
      say(`Race ${race.id}: ${s.title}, ${race.count} requests per stack — ${words[race.state]}`);
    }
  }
  const xmax = timeScale();
  race ? race.lanes.forEach((lane, i) => drawLane(i, lane, xmax)) : LANES.forEach((_, i) => drawLane(i, null, 1));
  drawChart(xmax);
  const notes = $("#notes");
  notes.replaceChildren(...((race && race.notes) || []).map((n) => el("li", {}, n)));
}

// The server's race clock (ms since the race began), while the race runs.
function raceNow() {
  return race && race.state !== "done" && gauges && gauges.t !== null && gauges.scenario === race.scenario ? gauges.t : null;
}

// One time axis for both lanes, so their bars compare at a glance.
function timeScale() {
  let xmax = 1;
  if (!race) return xmax;
  xmax = Math.max(xmax, raceNow() || 0);
  for (const lane of race.lanes) {
    for (const row of lane.rows) {
      xmax = Math.max(xmax, row.finished || 0, row.answered || 0);
    }
  }
  return xmax;
}

function figure(dl, key, label, value) {
  dl.append(el("dt", {}, label));
  const dd = el("dd", { "data-k": key });
  if (value instanceof Node) dd.append(value); else dd.textContent = value;
  dl.append(dd);
}

function drawLane(index, lane, xmax) {
  const root = document.querySelector(`.lane[data-lane="${index}"]`);
  const dl = $(".figures", root);
  const state = $(".lane-state", root);
  root.classList.toggle("down", !!lane && !lane.running);
  dl.replaceChildren();
  $(".checks", root).replaceChildren();
  $(".timeline", root).replaceChildren();
  drawGauges(index, root);
  if (!lane) { state.textContent = "No race yet: pick a scenario and press Race."; return; }
  if (!lane.running) { state.textContent = "not running (start it: scripts/lab.sh up --mode both)"; return; }
  const s = lane.summary;
  state.textContent = `expects ${lane.expected} (the contract's answer in ${lane.mode} mode)`;
  figure(dl, "answered", "answered", `${s.answered} of ${s.sent}`);
  const chips = el("span");
  for (const st of s.statuses) {
    chips.append(el("span", { class: `chip ${st.expected ? "expected" : "unexpected"}`, "data-status": st.status }, `${st.count} × ${st.status}`));
  }
  if (s.errors) chips.append(el("span", { class: "chip unexpected", "data-status": "none" }, `${s.errors} × no answer`));
  figure(dl, "statuses", "by status", chips);
  figure(dl, "answered_ms", "answered p50 / p95 / max", `${fmt(s.answered_ms.p50)} / ${fmt(s.answered_ms.p95)} / ${fmt(s.answered_ms.max)}`);
  figure(dl, "finished_ms", "finished p50 / p95 / max", `${fmt(s.finished_ms.p50)} / ${fmt(s.finished_ms.p95)} / ${fmt(s.finished_ms.max)}`);
  figure(dl, "accepted", "accepted", String(s.accepted));
  figure(dl, "finished", "finished", String(s.finished));
  figure(dl, "failed", "failed", String(s.failed));
  figure(dl, "pending", "still pending", String(s.pending));
  figure(dl, "lost", "lost", lane.lost === null ? (race.state === "done" ? "–" : "checked after the race") : String(lane.lost));
  for (const check of lane.checks) {
    $(".checks", root).append(el("li", { class: check.ok ? "ok" : "bad" }, check.text));
  }
  drawTimeline($(".timeline", root), lane, xmax, index);
}

function drawGauges(index, root) {
  const box = $(".gauges", root);
  box.replaceChildren();
  if (!gauges) return;
  // Gauges of another scenario (the sample taken as this race began may have
  // read the previous one's) would be read as this race's: wait for the next.
  if (race && gauges.scenario !== race.scenario) {
    box.textContent = "sampling the stack…";
    return;
  }
  if (index === 0 && gauges.sync) {
    const w = gauges.sync;
    box.textContent = `${w.service} workers: ${w.busy} busy of ${w.max}, ${count(w.waiting, "request")} waiting for one`;
  } else if (index === 0) {
    box.textContent = "workers: the service's /metrics did not answer";
  }
  if (index === 1 && gauges.async) {
    const table = el("table");
    const head = el("tr");
    for (const h of ["queue", "waiting", "consumers"]) head.append(el("th", {}, h));
    table.append(head);
    for (const q of gauges.async.queues) {
      const tr = el("tr", { "data-queue": q.name });
      for (const v of [q.name, q.ready, q.consumers]) tr.append(el("td", {}, String(v)));
      table.append(tr);
    }
    const dead = el("tr", { "data-queue": "dead-letters" });
    for (const v of ["dead-letters", gauges.async.dead_letters, ""]) dead.append(el("td", {}, String(v)));
    table.append(dead);
    box.append(table);
  } else if (index === 1) {
    box.textContent = "queues: the broker cannot be reached";
  }
}

function drawTimeline(svg, lane, xmax, index) {
  const width = 1000;
  const height = 200;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const n = lane.rows.length || 1;
  const bar = Math.max(height / n, 0.25);
  const x = (t) => (t / xmax) * width;
  const dark = index === 0 ? "var(--sync)" : "var(--async)";
  const light = index === 0 ? "var(--sync-light)" : "var(--async-light)";
  const now = raceNow();
  // One path per kind of bar, not an element per bar: a race of 1,000 is
  // six elements to lay out, so the page keeps its frames short.
  const paths = { answered: "", refused: "", finished: "", waiting: "", inflight: "" };
  const h = Math.max(bar - (n <= 100 ? 1 : 0), 0.25).toFixed(2);
  lane.rows.forEach((row, i) => {
    const y = ((i * height) / n).toFixed(2);
    const add = (kind, from, to) => {
      paths[kind] += `M${x(from).toFixed(1)} ${y}h${Math.max(x(to) - x(from), 1).toFixed(1)}v${h}H${x(from).toFixed(1)}Z`;
    };
    if (row.answered !== null) {
      add(row.status === lane.expected ? "answered" : "refused", row.sent, row.answered);
      if (row.finished !== null && row.finished > row.answered) add("finished", row.answered, row.finished);
      // Accepted, not finished yet: waiting, up to now.
      else if (row.finished === null && row.status === lane.expected && now !== null) add("waiting", row.answered, now);
    } else if (row.error) {
      add("refused", row.sent, row.sent + xmax / 200);
    } else if (now !== null) {
      // Sent, no answer yet: the client is still waiting.
      add("inflight", row.sent, now);
    }
  });
  const style = {
    answered: [dark, 1], refused: ["var(--bad)", 1], finished: [light, 1],
    waiting: [light, 0.45], inflight: [dark, 0.35],
  };
  for (const [kind, d] of Object.entries(paths)) {
    if (d) svg.append(svgEl("path", { d, fill: style[kind][0], "fill-opacity": style[kind][1], "data-kind": kind }));
  }
}

// Finished per second for each lane (from the rows' finished times) and the
// async queue depth (sampled by the server), on one time axis.
function drawChart(xmax) {
  const svg = $("#chart");
  svg.replaceChildren();
  $("#chart-top").textContent = "";
  const width = 1000;
  const height = 200;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  if (!race) return;
  const span = Math.max(xmax, ...race.timeline.map((s) => s.t), 1);
  // Forty buckets over the race, however short: a race of a few hundred ms
  // still shows when each lane finished, not one line from start to end.
  const step = span / 40;
  const buckets = Math.ceil(span / step) + 1;
  const rates = race.lanes.map((lane) => {
    const counts = new Array(buckets).fill(0);
    for (const row of lane.rows) {
      if (row.finished !== null && row.status === lane.expected) counts[Math.floor(row.finished / step)] += 1;
    }
    return counts.map((c) => (c * 1000) / step);
  });
  const depth = race.timeline.filter((s) => s.async_depth !== null && s.async_depth !== undefined);
  const topRate = Math.max(1, ...rates.flat());
  const topDepth = Math.max(1, ...depth.map((s) => s.async_depth));
  const x = (t) => (t / span) * width;
  // A margin, so a line at its top or at zero stays in sight.
  const y = (v, top) => height - 4 - (v / top) * (height - 14);
  const line = (points, stroke, extra = {}) => svg.append(svgEl("polyline", {
    points: points.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" "),
    fill: "none", stroke, "stroke-width": 2, "vector-effect": "non-scaling-stroke",
    ...extra,
  }));
  race.lanes.forEach((lane, i) => {
    if (!lane.running) return;
    // Sync is drawn wider, under async: where the two lanes finish alike,
    // sync still shows on both sides of the async line.
    line(rates[i].map((r, b) => [x(b * step), y(r, topRate)]), i === 0 ? "var(--sync)" : "var(--async)",
      { "data-lane": lane.mode, ...(i === 0 ? { "stroke-width": 5 } : {}) });
  });
  if (depth.length) {
    line(depth.map((s) => [x(s.t), y(s.async_depth, topDepth)]), "#7a7a86", { "stroke-dasharray": "4 3" });
    // A tick above each sample: between ticks the line is drawn, not
    // measured (a short race has only a few samples). Vertical, so the
    // stretched viewBox leaves them ticks; upward, so one at zero shows;
    // kept a unit inside the edges, where the last sample usually is.
    const tickX = (t) => Math.min(Math.max(x(t), 1), width - 1).toFixed(1);
    const ticks = depth.map((s) => `M${tickX(s.t)} ${(y(s.async_depth, topDepth) - 8).toFixed(1)}v8`).join("");
    svg.append(svgEl("path", { d: ticks, stroke: "#7a7a86", "stroke-width": 2, "vector-effect": "non-scaling-stroke", "data-kind": "depth-samples" }));
  }
  // The measured peaks (the scales' floor of 1 only keeps an empty chart drawable).
  const peakRate = Math.max(0, ...rates.flat());
  const peakDepth = Math.max(0, ...depth.map((s) => s.async_depth));
  $("#chart-top").textContent = `peaks: ${peakRate.toFixed(0)} finished/s, ${count(peakDepth, "message")} waiting`;
  axis(svg, ["0", fmt(span / 2), fmt(span)]);
}

// Time labels under a stretched SVG, as HTML so they are not stretched too.
function axis(svg, labels) {
  let row = svg.nextElementSibling;
  if (!row || !row.classList.contains("axis")) {
    row = el("div", { class: "axis" });
    svg.after(row);
  }
  row.replaceChildren(...labels.map((t) => el("span", {}, t)));
}

(async function main() {
  await refreshConfig();
  buildControls();
  connect();
  setInterval(refreshConfig, 5000);
  queueDraw();
})();
