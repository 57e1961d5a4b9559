// Ward's dashboard: logs in against /auth/login, then draws the analytics figures and offers a
// patient search. Plain DOM and SVG, no framework or CDN: clinics may be offline, and the page's
// CSP allows only this origin's script and style. The access token lives in memory only, so
// closing or reloading the tab logs out.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const session = { token: null };

function byId(id) {
  return document.getElementById(id);
}

/// Calls the API with the session's token; resolves to the parsed JSON, or throws an Error whose
/// message is the problem+json `detail` (or `title`) the server sent.
async function api(path, options = {}) {
  const headers = { accept: "application/json", ...(options.headers || {}) };
  if (session.token) headers.authorization = `Bearer ${session.token}`;
  const response = await fetch(path, { ...options, headers });
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const message = (body && (body.detail || body.title)) || `HTTP ${response.status}`;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return body;
}

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

/// Minor units to a localised amount; the currency decides its number of decimals.
function formatMoney(minor, currency) {
  if (!currency) return String(minor);
  const format = new Intl.NumberFormat(undefined, { style: "currency", currency });
  const digits = format.resolvedOptions().maximumFractionDigits;
  return format.format(minor / 10 ** digits);
}

function setFigure(name, value, text) {
  const element = document.querySelector(`[data-figure="${name}"]`);
  element.dataset.value = String(value);
  element.textContent = text === undefined ? String(value) : text;
}

function svg(name, attributes, text) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

/// A bar chart (one series) or grouped bars (several) of `points` [{label, values: [..]}].
/// Every bar carries its value in data-value and a <title> for hover and screen readers.
function drawBars(container, points, seriesClasses, formatValue) {
  container.replaceChildren();
  const width = 600;
  const height = 220;
  // Room at the sides for the first and last axis labels, which are centred on their bars.
  const pad = { left: 36, right: 36, top: 10, bottom: 28 };
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    preserveAspectRatio: "none",
  });
  const max = Math.max(1, ...points.flatMap((point) => point.values.map((v) => Math.abs(v))));
  const plotWidth = width - pad.left - pad.right;
  const plotHeight = height - pad.top - pad.bottom;
  const slot = plotWidth / Math.max(1, points.length);
  const barWidth = Math.max(1, (slot * 0.8) / seriesClasses.length);
  const labelEvery = Math.ceil(points.length / 8);
  points.forEach((point, index) => {
    point.values.forEach((value, series) => {
      const barHeight = (Math.max(0, value) / max) * plotHeight;
      const x = pad.left + index * slot + slot * 0.1 + series * barWidth;
      const bar = svg("rect", {
        x: x.toFixed(2),
        y: (pad.top + plotHeight - barHeight).toFixed(2),
        width: barWidth.toFixed(2),
        height: barHeight.toFixed(2),
        class: `bar ${seriesClasses[series]}`,
        "data-start": point.label,
        "data-value": value,
      });
      bar.append(svg("title", {}, `${point.label}: ${formatValue(value)}`));
      chart.append(bar);
    });
    if (index % labelEvery === 0) {
      const label = svg(
        "text",
        { x: (pad.left + index * slot + slot / 2).toFixed(2), y: height - 8, class: "axis" },
        point.label,
      );
      chart.append(label);
    }
  });
  chart.append(svg("line", {
    x1: pad.left, x2: width - pad.right, y1: pad.top + plotHeight, y2: pad.top + plotHeight,
    class: "baseline",
  }));
  if (points.every((point) => point.values.every((value) => value === 0))) {
    chart.append(svg("text", { x: width / 2, y: height / 2, class: "empty" }, "Nothing in this period"));
  }
  const total = points.reduce((sum, point) => sum + point.values[0], 0);
  chart.setAttribute("aria-label", `${points.length} bars, largest ${formatValue(max)}, first series total ${formatValue(total)}`);
  container.append(chart);
}

function chosenPeriod() {
  const days = Number(byId("range").value);
  const to = new Date();
  const from = new Date(to.getTime() - (days - 1) * 86400000);
  return { from: isoDay(from), to: isoDay(to), interval: byId("interval").value };
}

function timeseriesPath(metric, period, currency) {
  const query = new URLSearchParams({ metric, from: period.from, to: period.to, interval: period.interval });
  if (currency) query.set("currency", currency);
  return `/api/analytics/timeseries?${query}`;
}

/// The currencies analytics has seen, from payments by method and the selector's current choice.
function fillCurrencies(summary) {
  const select = byId("currency");
  const seen = new Set(Object.keys(summary.paymentsByMethod || {}));
  if (summary.currencies) summary.currencies.forEach((code) => seen.add(code));
  const current = select.value;
  const codes = [...seen].sort();
  select.replaceChildren(...codes.map((code) => new Option(code, code)));
  if (codes.includes(current)) select.value = current;
  select.disabled = codes.length === 0;
  return select.value || null;
}

async function loadFigures() {
  byId("status").textContent = "Loading…";
  try {
    const summary = await api("/api/analytics/summary");
    setFigure("patientsRegistered", summary.patientsRegistered);
    setFigure("activePatients", summary.activePatients ?? summary.patientsRegistered - summary.patientsDeleted);
    const currency = fillCurrencies(summary);
    const period = chosenPeriod();

    const registrations = await api(timeseriesPath("registrations", period, null));
    drawBars(
      byId("chart-registrations"),
      registrations.points.map((point) => ({ label: point.start, values: [point.value] })),
      ["registrations"],
      (value) => String(value),
    );

    const money = (value) => formatMoney(value, currency);
    if (currency) {
      const [invoiced, collected, receivables] = await Promise.all([
        api(timeseriesPath("invoiced", period, currency)),
        api(timeseriesPath("collected", period, currency)),
        api(`/api/analytics/receivables?currency=${encodeURIComponent(currency)}`),
      ]);
      const sum = (series) => series.points.reduce((total, point) => total + point.value, 0);
      setFigure("invoicedTotal", sum(invoiced), money(sum(invoiced)));
      setFigure("collectedTotal", sum(collected), money(sum(collected)));
      drawBars(
        byId("chart-money"),
        invoiced.points.map((point, index) => ({
          label: point.start,
          values: [point.value, collected.points[index] ? collected.points[index].value : 0],
        })),
        ["invoiced", "collected"],
        money,
      );
      const buckets = ["0-30", "31-60", "61-90", "90+"];
      const outstanding = buckets.reduce((total, bucket) => total + receivables.buckets[bucket], 0);
      setFigure("receivablesTotal", outstanding, money(outstanding));
      drawBars(
        byId("chart-receivables"),
        buckets.map((bucket) => ({ label: bucket, values: [receivables.buckets[bucket]] })),
        ["receivables"],
        money,
      );
      fillPaymentsByMethod(summary.paymentsByMethod[currency] || {}, money);
    } else {
      for (const name of ["invoicedTotal", "collectedTotal", "receivablesTotal"]) setFigure(name, 0, "–");
      for (const id of ["chart-money", "chart-receivables"]) {
        byId(id).replaceChildren(Object.assign(document.createElement("p"), {
          className: "muted",
          textContent: "No invoices or payments yet.",
        }));
      }
      fillPaymentsByMethod({}, money);
    }
    byId("status").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    byId("status").textContent = `Could not load the figures: ${error.message}`;
    if (error.status === 401) showLogin("Your session ended; log in again.");
  }
}

function fillPaymentsByMethod(byMethod, money) {
  const rows = Object.entries(byMethod)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([method, amount]) => {
      const row = document.createElement("tr");
      row.dataset.method = method;
      row.dataset.value = String(amount);
      const name = document.createElement("td");
      name.textContent = method.replace("_", " ");
      const value = document.createElement("td");
      value.className = "num";
      value.textContent = money(amount);
      row.append(name, value);
      return row;
    });
  byId("payments-by-method").tBodies[0].replaceChildren(...rows);
}

async function searchPatients(event) {
  event.preventDefault();
  const name = byId("search").value.trim();
  const table = byId("search-results");
  const problem = byId("search-error");
  problem.hidden = true;
  if (!name) {
    table.hidden = true;
    return;
  }
  try {
    const page = await api(`/api/patients?${new URLSearchParams({ name, limit: "20", sort: "name" })}`);
    const rows = page.items.map((patient) => {
      const row = document.createElement("tr");
      row.dataset.patientId = patient.id;
      for (const text of [patient.name, patient.mrn, patient.dateOfBirth]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      return row;
    });
    if (rows.length === 0) {
      const row = document.createElement("tr");
      const cell = document.createElement("td");
      cell.colSpan = 3;
      cell.className = "muted";
      cell.textContent = "No patient matches.";
      row.append(cell);
      rows.push(row);
    }
    table.tBodies[0].replaceChildren(...rows);
    table.hidden = false;
  } catch (error) {
    problem.textContent = error.message;
    problem.hidden = false;
  }
}

function showLogin(message) {
  session.token = null;
  byId("dashboard-view").hidden = true;
  byId("login-view").hidden = false;
  byId("logout").hidden = true;
  byId("who").textContent = "";
  const problem = byId("login-error");
  problem.textContent = message || "";
  problem.hidden = !message;
}

async function logIn(event) {
  event.preventDefault();
  const submit = byId("login-submit");
  submit.disabled = true;
  try {
    const answer = await api("/auth/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: byId("email").value, password: byId("password").value }),
    });
    session.token = answer.token;
    byId("password").value = "";
    const me = await api("/auth/me");
    byId("who").textContent = `${me.email} (${me.role})`;
    byId("login-view").hidden = true;
    byId("dashboard-view").hidden = false;
    byId("logout").hidden = false;
    await loadFigures();
  } catch (error) {
    showLogin(error.status === 401 ? "Wrong email or password." : error.message);
  } finally {
    submit.disabled = false;
  }
}

async function logOut() {
  try {
    await api("/auth/logout", { method: "POST" });
  } catch (_) {
    // The token is dropped either way; the server ends it on its own at expiry.
  }
  showLogin("");
}

document.addEventListener("DOMContentLoaded", () => {
  byId("login-form").addEventListener("submit", logIn);
  byId("search-form").addEventListener("submit", searchPatients);
  byId("logout").addEventListener("click", logOut);
  for (const id of ["range", "interval", "currency"]) byId(id).addEventListener("change", loadFigures);
});
