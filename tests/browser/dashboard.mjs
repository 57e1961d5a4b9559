// Drives /dashboard in a real headless chromium: seeds invoices and payments through the API, logs
// in through the form, and checks that every figure the page shows equals what the API answers.
// Saves a laptop and a tablet screenshot. Usage: node dashboard.mjs BASE_URL OUT_DIR
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import path from "node:path";

const [base, outDir] = process.argv.slice(2);
assert.ok(base && outDir, "usage: node dashboard.mjs BASE_URL OUT_DIR");
const EMAIL = "testuser@test.com";
const PASSWORD = "password123";
const CURRENCY = "EUR";

async function call(token, method, url, body, headers = {}) {
  const response = await fetch(base + url, {
    method,
    headers: {
      "content-type": "application/json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${url}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function eventually(what, check, seconds = 30) {
  const deadline = Date.now() + seconds * 1000;
  let last;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

// --- seed: two invoices, a partial payment, an overpayment (credit) and a refund -------------
const { token } = await call(null, "POST", "/auth/login", { email: EMAIL, password: PASSWORD });
const patients = (await call(token, "GET", "/api/patients?limit=3")).items;
assert.ok(patients.length >= 2, "the demo data has patients");
const [first, second] = patients;
for (const patient of [first, second]) {
  await eventually(`${patient.id}'s billing account`, () =>
    call(token, "GET", `/api/billing/accounts/${patient.id}`));
}
const due = isoDay(new Date(Date.now() + 30 * 86400000));
async function issuedInvoice(patient, lines) {
  const draft = await call(token, "POST", "/api/billing/invoices", {
    patientId: patient.id, currency: CURRENCY, dueDate: due, lines,
  });
  return call(token, "POST", `/api/billing/invoices/${draft.id}/issue`);
}
const consult = await issuedInvoice(first, [
  { code: "C01", description: "Consultation", quantity: 1, unitPrice: 8500 },
  { code: "L02", description: "Blood panel", quantity: 2, unitPrice: 1250 },
]);
await issuedInvoice(second, [{ code: "C01", description: "Consultation", quantity: 1, unitPrice: 8500 }]);
const pay = (patient, amount, method, invoiceId) =>
  call(token, "POST", "/api/billing/payments",
    { patientId: patient.id, amount, currency: CURRENCY, method, reference: `seed-${amount}`, invoiceId },
    { "idempotency-key": randomUUID() });
await pay(first, 5000, "card", consult.id);
const cash = await pay(second, 10000, "cash");
await call(token, "POST", `/api/billing/payments/${cash.id}/refund`, { amount: 1500 });

// --- what the API says, once analytics has caught up --------------------------------------------
const to = new Date();
const period = { from: isoDay(new Date(to.getTime() - 29 * 86400000)), to: isoDay(to), interval: "day" };
const series = (metric, currency) => {
  const query = new URLSearchParams({ metric, ...period });
  if (currency) query.set("currency", currency);
  return call(token, "GET", `/api/analytics/timeseries?${query}`);
};
const total = (answer) => answer.points.reduce((sum, point) => sum + point.value, 0);
await eventually("analytics to count the seeded money", async () =>
  total(await series("collected", CURRENCY)) === 5000 + 10000 - 1500 &&
  total(await series("invoiced", CURRENCY)) === 8500 + 2500 + 8500);
const summary = await call(token, "GET", "/api/analytics/summary");
const registrations = await series("registrations");
const invoiced = await series("invoiced", CURRENCY);
const collected = await series("collected", CURRENCY);
const receivables = await call(token, "GET", `/api/analytics/receivables?currency=${CURRENCY}`);
const outstanding = Object.values(receivables.buckets).reduce((sum, value) => sum + value, 0);

// --- the page ----------------------------------------------------------------------------------
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // Root in CI containers cannot use chromium's user-namespace sandbox.
  args: ["--no-sandbox"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
  const problems = [];
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(message.text());
  });
  page.on("pageerror", (error) => problems.push(error.message));

  await page.goto(`${base}/dashboard`);
  await page.fill("#email", EMAIL);
  await page.fill("#password", "not the password");
  await page.click("#login-submit");
  await page.waitForSelector("#login-error:not([hidden])");
  assert.match(await page.textContent("#login-error"), /wrong email or password/i);
  // The browser logs the refused login's 401 as an error; it was the point of the step.
  problems.length = 0;

  await page.fill("#password", PASSWORD);
  await page.click("#login-submit");
  await page.waitForSelector("#dashboard-view:not([hidden])");
  await page.waitForSelector('[data-figure="receivablesTotal"][data-value]');

  const figure = async (name) =>
    Number(await page.getAttribute(`[data-figure="${name}"]`, "data-value"));
  assert.equal(await figure("patientsRegistered"), summary.patientsRegistered);
  assert.equal(await figure("activePatients"), summary.activePatients);
  assert.equal(await figure("invoicedTotal"), total(invoiced));
  assert.equal(await figure("collectedTotal"), total(collected));
  assert.equal(await figure("receivablesTotal"), outstanding);
  assert.equal(await page.inputValue("#currency"), CURRENCY);

  const bars = await page.$$eval("#chart-registrations rect.bar", (rects) =>
    rects.map((rect) => [rect.dataset.start, Number(rect.dataset.value)]));
  assert.deepEqual(bars, registrations.points.map((point) => [point.start, point.value]));
  const ageBars = await page.$$eval("#chart-receivables rect.bar", (rects) =>
    rects.map((rect) => [rect.dataset.start, Number(rect.dataset.value)]));
  assert.deepEqual(ageBars, Object.entries(receivables.buckets));
  const methods = await page.$$eval("#payments-by-method tbody tr", (rows) =>
    Object.fromEntries(rows.map((row) => [row.dataset.method, Number(row.dataset.value)])));
  assert.deepEqual(methods, summary.paymentsByMethod[CURRENCY]);

  // Search by the first word of a demo patient's name.
  const word = first.name.split(/\s+/)[0];
  await page.fill("#search", word.slice(0, 3));
  await page.click("#search-form button");
  await page.waitForSelector("#search-results:not([hidden])");
  const found = await page.$$eval("#search-results tbody tr", (rows) => rows.map((row) => row.dataset.patientId));
  assert.ok(found.includes(first.id), `searching ${word.slice(0, 3)} lists ${first.name}`);

  await page.screenshot({ path: path.join(outDir, "dashboard.png"), fullPage: true });

  // A tablet in portrait: one column, nothing wider than the screen.
  await page.setViewportSize({ width: 820, height: 1180 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than a tablet`);
  await page.screenshot({ path: path.join(outDir, "dashboard-tablet.png"), fullPage: true });

  assert.deepEqual(problems, [], "the page logged no errors (CSP violations included)");
  console.log(`dashboard: figures match the API (registered ${summary.patientsRegistered}, ` +
    `invoiced ${total(invoiced)}, collected ${total(collected)}, outstanding ${outstanding} ${CURRENCY}); ` +
    `screenshots in ${outDir}`);
} finally {
  await browser.close();
}
