// The analysts' dashboard: reads /api/v1/me and /api/v1/stats with the analyst's bearer token.
// The token lives in this tab's sessionStorage only (never a cookie, never localStorage) and
// goes out only as `Authorization: Bearer` to this origin; a 401 forgets it.
import { LineChart } from "./chartist.js";

const TOKEN = "veil.dashboard.token";
const API = new URL("api/v1/", document.baseURI);
const LISTS = ["browser", "os", "device", "country", "language", "screen", "path"];
const TITLES = {
  browser: "Browsers", os: "Operating systems", device: "Devices", country: "Countries",
  language: "Languages", screen: "Screen widths (px)", path: "Pages",
};
const TOP = 10;
const DAY = 86400000;
const $ = (id) => document.getElementById(id);
const fmt = (n) => n.toLocaleString("en-US");

let me = null;
let generation = 0; // answers to an older "Show" are dropped

class LoggedOut extends Error {}

function token() {
  return sessionStorage.getItem(TOKEN);
}

function showLogin(detail, forget = true) {
  if (forget) sessionStorage.removeItem(TOKEN);
  me = null;
  generation++;
  $("board").hidden = true;
  $("who").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = detail || "";
  $("login-error").hidden = !detail;
  $("token").value = "";
  $("token").focus();
}

async function problemDetail(res) {
  try {
    const body = await res.json();
    return body.detail || body.title || `HTTP ${res.status}`;
  } catch {
    return `HTTP ${res.status}`;
  }
}

// a 503 whose Retry-After is short (the store still opening, a locked moment) is retried;
// a long one (veil not collecting: an operator must act) is shown at once
const RETRIES = 3;
const MAX_WAIT = 10;

async function api(path, params = {}, csv = false) {
  const url = new URL(path, API);
  for (const [name, value] of Object.entries(params)) url.searchParams.append(name, value);
  if (csv) url.searchParams.append("format", "csv");
  let res;
  for (let attempt = 1; ; attempt++) {
    res = await fetch(url, {
      headers: { Authorization: `Bearer ${token()}` },
      credentials: "omit",
      cache: "no-store",
      referrerPolicy: "no-referrer",
    });
    const wait = Number(res.headers.get("Retry-After") ?? 1);
    if (res.status !== 503 || attempt >= RETRIES || !(wait >= 0 && wait <= MAX_WAIT)) break;
    $("status").textContent = `Unavailable for now: trying again in ${wait} s…`;
    await new Promise((done) => setTimeout(done, wait * 1000));
  }
  if (res.status === 401) {
    showLogin(await problemDetail(res));
    throw new LoggedOut();
  }
  if (!res.ok) throw new Error(await problemDetail(res));
  return csv ? res.blob() : res.json();
}

// -- dates: whole UTC days, `until` exclusive as the API takes it -----------------------------

const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);
const dayMs = (iso) => Date.parse(`${iso}T00:00:00Z`);

function days(since, last) {
  const out = [];
  for (let t = dayMs(since); t <= dayMs(last); t += DAY) out.push(isoDay(t));
  return out;
}

const MAX_DAYS = 366; // the series draws a point a day: a range from 1900 would hang the tab

function range() {
  const since = $("since").value;
  const last = $("until").value;
  if (!since || !last || dayMs(last) < dayMs(since)) return null;
  if ((dayMs(last) - dayMs(since)) / DAY + 1 > MAX_DAYS) return null;
  return { since, last, until: isoDay(dayMs(last) + DAY) };
}

// -- who the token is --------------------------------------------------------------------------

async function loadMe() {
  me = await api("me");
  $("login").hidden = true;
  $("board").hidden = false;
  $("who").textContent = `${me.analyst} · k = ${me.k}`;
  $("who").hidden = false;
  $("logout").hidden = false;
  const select = $("purpose");
  select.replaceChildren(...me.purposes.map((p) => new Option(p.purpose, p.purpose)));
  if (!me.purposes.length) {
    $("status").textContent = "Your token grants no purpose the policy opens to analysts.";
    return;
  }
  fillUses();
  const today = Date.now() - (Date.now() % DAY);
  $("until").value = isoDay(today);
  $("since").value = isoDay(today - 29 * DAY);
  await refresh();
}

function purpose() {
  return me.purposes.find((p) => p.purpose === $("purpose").value);
}

function fillUses() {
  const p = purpose();
  $("use").replaceChildren(...p.uses.map((u) => new Option(u, u)));
  $("purpose-note").textContent = p.description;
}

// -- the panels ----------------------------------------------------------------------------------

// the panels' query: the chosen site, if any, as a filter (the engine answers it as a slice of
// the grouping by site and the panel's dimension, so the numbers are exactly the API's)
function query(extra, filtered = true) {
  const p = purpose();
  const r = range();
  const metrics = ["events", "visitors"].filter((m) => p.metrics.includes(m));
  const where = filtered && site() !== null ? { where: `site:${site()}` } : {};
  return {
    purpose: p.purpose, use: $("use").value, since: r.since, until: r.until,
    metric: metrics.join(","), ...where, ...extra,
  };
}

// -- the site selector: the sites the purpose's data holds in the range -------------------------

function site() {
  const select = $("site");
  return $("site-field").hidden || select.selectedIndex < 1 ? null : select.value;
}

// A suppressed site is listed (its name is in the API's by=site answer anyway) but cannot be
// chosen: its day cells are below k (or hidden beside one that is), so its panels would show
// little but suppressed groups.
// Rows without a site cannot be filtered to (where takes text) and are not listed.
function fillSites(body) {
  const select = $("site");
  const chosen = site();
  const cells = (body?.cells ?? []).filter((c) => c.key.site !== null);
  const options = cells.map((c) => {
    const shown = c.values !== null;
    const option = new Option(shown ? c.key.site : `${c.key.site} (suppressed)`, c.key.site);
    option.disabled = !shown;
    return option;
  });
  select.replaceChildren(new Option("All sites", ""), ...options);
  const keep = options.findIndex((o) => !o.disabled && o.value === chosen);
  select.selectedIndex = keep + 1; // -1 + 1: all sites
  $("site-field").hidden = cells.length < 2;
}

async function loadSites(mine) {
  if (!purpose().dimensions.includes("site")) return fillSites(null);
  try {
    const body = await api("stats", query({ by: "site" }, false));
    if (mine === generation) fillSites(body);
  } catch (error) {
    if (mine === generation) fillSites(null);
    throw error;
  }
}

function hiddenDays(cell) {
  return cell.suppressed_days ? ` (${cell.suppressed_days} day(s) below k left out)` : "";
}

function rangeNote(body) {
  return body.range ? ` Days read: ${body.range.first_day} to ${body.range.last_day}.` : "";
}

async function refresh({ sites = true } = {}) {
  const r = range();
  if (!r) {
    $("status").textContent =
      `Choose a range whose end is not before its start, of at most ${MAX_DAYS} days.`;
    return;
  }
  const mine = ++generation;
  const p = purpose();
  $("status").textContent = "Loading…";
  const found = sites ? await loadSites(mine).catch((error) => error) : null;
  if (mine !== generation || found instanceof LoggedOut) return;
  const lists = LISTS.filter((d) => p.dimensions.includes(d));
  const panels = lists.map(listPanel);
  $("lists").replaceChildren(...panels.map((x) => x.node));
  const jobs = [
    api("stats", query({ by: "day" })).then((body) => mine === generation && drawSeries(body, r)),
    ...panels.map((x, i) =>
      api("stats", query({ by: lists[i] })).then((body) => mine === generation && x.fill(body)),
    ),
  ];
  const results = await Promise.allSettled(jobs);
  if (mine !== generation) return;
  const failed = found instanceof Error
    ? { reason: found }
    : results.find((x) => x.status === "rejected");
  if (failed && failed.reason instanceof LoggedOut) return;
  $("status").textContent = failed ? `Could not load: ${failed.reason.message}` : "";
  document.body.dataset.loaded = String(mine);
}

function drawSeries(body, r) {
  const labels = days(r.since, r.last);
  const byDay = new Map(body.cells.map((c) => [c.key.day, c]));
  const metrics = body.metrics;
  const hidden = labels.filter((d) => byDay.get(d)?.values === null);
  const series = metrics.map((m) => ({
    name: m,
    data: labels.map((d) => {
      const cell = byDay.get(d);
      if (!cell) return 0; // no event that day
      return cell.values === null ? null : cell.values[m];
    }),
  }));
  const step = Math.max(1, Math.ceil(labels.length / (innerWidth < 600 ? 4 : 8)));
  const chart = new LineChart($("chart"), { labels, series }, {
    fullWidth: true,
    lineSmooth: false,
    chartPadding: { top: 12, right: 16, bottom: 0, left: 0 },
    axisX: { labelInterpolationFnc: (v, i) => (i % step === 0 ? v.slice(5) : null) },
    axisY: { onlyInteger: true, low: 0 },
  });
  chart.on("draw", (d) => {
    if (d.type !== "point") return;
    const day = labels[d.index];
    const metric = metrics[d.seriesIndex];
    const cell = byDay.get(day);
    d.element.attr({ "data-day": day, "data-metric": metric });
    d.element.elem("title").text(`${day}: ${fmt(d.value.y)} ${metric}${cell ? hiddenDays(cell) : ""}`);
    if (cell?.suppressed_days) d.element.addClass("partial");
  });
  chart.on("created", (c) => {
    // a suppressed day is a gap in the lines: mark it, so it does not read as missing data
    const { x1, x2, y1, y2 } = c.chartRect;
    const width = labels.length > 1 ? (x2 - x1) / (labels.length - 1) : x2 - x1;
    for (const day of hidden) {
      const i = labels.indexOf(day);
      c.svg
        .elem("rect", {
          x: x1 + i * width - width / 2, y: y2, width, height: y1 - y2, "data-day": day,
        }, "suppressed-day")
        .elem("title").text(`${day}: suppressed: fewer than k persons`);
    }
  });
  const notes = [];
  if (hidden.length) notes.push(`Suppressed: fewer than k = ${body.k} persons on ${hidden.join(", ")}.`);
  const partial = body.cells.filter((c) => c.values !== null && c.suppressed_days);
  if (partial.length) {
    notes.push(`${partial.map((c) => c.key.day).join(", ")}: some counts below k left out.`);
  }
  $("series-note").textContent = notes.join(" ") + rangeNote(body);
  $("series-panel").dataset.shown = String(labels.length - hidden.length);
}

function listPanel(dim) {
  const node = $("list-panel").content.firstElementChild.cloneNode(true);
  node.dataset.dimension = dim;
  node.querySelector("h2").textContent = TITLES[dim];
  const csv = node.querySelector(".csv");
  csv.dataset.panel = dim;
  csv.setAttribute("aria-label", `Download ${TITLES[dim]} as CSV`);
  node.querySelector(".note").textContent = "Loading…";
  return { node, fill: (body) => fillList(node, body) };
}

function fillList(node, body) {
  const dim = body.by[0];
  const shown = body.cells.filter((c) => c.values !== null);
  const first = body.metrics[0];
  const max = Math.max(1, ...shown.map((c) => c.values[first]));
  const rows = body.cells.slice(0, TOP).map((cell) => {
    const li = document.createElement("li");
    const value = cell.key[dim];
    li.dataset.key = value ?? "";
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = value ?? "(not recorded)";
    const numbers = document.createElement("span");
    numbers.className = "numbers";
    li.append(label, numbers);
    if (cell.values === null) {
      li.className = "suppressed";
      numbers.textContent = `suppressed: fewer than ${body.k} persons`;
      return li;
    }
    for (const m of body.metrics) {
      const n = document.createElement("span");
      n.className = m;
      n.dataset.value = String(cell.values[m]);
      n.textContent = `${fmt(cell.values[m])} ${m}`;
      numbers.append(n);
    }
    if (cell.suppressed_days) {
      const mark = document.createElement("abbr");
      mark.className = "partial";
      mark.title = `${cell.suppressed_days} day(s) below k left out of this sum`;
      mark.textContent = "†";
      numbers.append(mark);
    }
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${(100 * cell.values[first]) / max}%`; // CSSOM: allowed by the CSP
    li.append(bar);
    return li;
  });
  node.querySelector(".top").replaceChildren(...rows);
  const notes = [];
  if (!body.cells.length) notes.push("No events in this range.");
  if (body.cells.length > TOP) notes.push(`Top ${TOP} of ${body.cells.length} groups.`);
  if (body.suppressed) {
    notes.push(`${body.suppressed} group(s) suppressed: fewer than k = ${body.k} persons.`);
  }
  if (body.cells.some((c) => c.suppressed_days)) notes.push("†: some days below k left out.");
  node.querySelector(".note").textContent = notes.join(" ") + rangeNote(body);
}

async function download(panel) {
  const by = panel === "series" ? "day" : panel;
  const params = query({ by });
  try {
    const blob = await api("stats", params, true);
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    const where = site() === null ? "" : `${site().replace(/[^\w.-]+/g, "_")}-`;
    a.download = `veil-${params.purpose}-${where}${by}-${params.since}-${$("until").value}.csv`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
  } catch (error) {
    if (!(error instanceof LoggedOut)) $("status").textContent = `CSV: ${error.message}`;
  }
}

// -- wiring ----------------------------------------------------------------------------------------

async function start() {
  try {
    await loadMe();
  } catch (error) {
    // not the token's fault (a 503 that lasted, the network): keep it, a reload tries again
    if (!(error instanceof LoggedOut)) showLogin(`Could not load: ${error.message}`, false);
  }
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN, $("token").value.trim());
  $("token").value = "";
  start();
});
$("logout").addEventListener("click", () => showLogin(""));
$("purpose").addEventListener("change", () => {
  fillUses();
  refresh().catch(() => {});
});
$("site").addEventListener("change", () => refresh({ sites: false }).catch(() => {}));
$("query").addEventListener("submit", (event) => {
  event.preventDefault();
  refresh().catch(() => {});
});
document.addEventListener("click", (event) => {
  const button = event.target.closest("button.csv");
  if (button) download(button.dataset.panel);
});

if (token()) start();
else showLogin("");
