// The race page in a real browser (Debian's chromium, driven by
// playwright-core), against both stacks and their launchers as
// `scripts/check-showdown.sh` starts them. It races, reads the page, and
// checks the page's numbers against the showdown's API and the stacks' own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const SHOWDOWN = process.env.SHOWDOWN_URL ?? "http://127.0.0.1:3000";
const SHOTS = process.env.SCREENSHOTS ?? "screenshots";
const STACK = { sync: 8000, async: 8100 }; // + the service's number: 8001, 8105, ...
const SERVICE = { user: 1, payment: 2, order: 5, inventory: 10 };
const LIMIT = 180_000;

const stackUrl = (lane, service, path) => `http://127.0.0.1:${STACK[lane] + SERVICE[service]}${path}`;
const getJson = async (url) => (await fetch(url)).json();

async function currentRace() {
  const response = await fetch(`${SHOWDOWN}/api/races/current`);
  return response.ok ? response.json() : null;
}

// Picks the scenario and count on the page, presses Race, waits for the page to say `state`.
async function race(page, scenario, count, state = "done") {
  const before = (await currentRace())?.id ?? 0;
  await page.selectOption("#scenario", String(scenario));
  await page.check(`input[name=count][value="${count}"]`);
  await page.click("#race");
  await page.waitForFunction(
    ([id, want]) => Number(document.body.dataset.race) > id && document.body.dataset.state === want,
    [before, state],
    { timeout: LIMIT },
  );
  return currentRace();
}

const figure = (page, lane, key) => page.textContent(`#lane-${lane} [data-k="${key}"]`);
const chip = (page, lane, status) => page.textContent(`#lane-${lane} [data-status="${status}"]`);

// The page's figures for a lane equal the showdown API's.
async function pageMatchesApi(page, run, lane) {
  const s = run.lanes[lane === "sync" ? 0 : 1].summary;
  assert.equal(await figure(page, lane, "answered"), `${s.answered} of ${s.sent}`);
  for (const key of ["accepted", "finished", "failed", "pending"]) {
    assert.equal(await figure(page, lane, key), String(s[key]), `${lane} ${key}`);
  }
  for (const st of s.statuses) {
    assert.equal(await chip(page, lane, st.status), `${st.count} × ${st.status}`);
  }
}

// How many of the race's operations the stack itself reports finished with `done`.
async function stackCount(run, lane, service, done) {
  const rows = run.lanes[lane === "sync" ? 0 : 1].rows.filter((r) => r.resource);
  let n = 0;
  for (const row of rows) {
    if (done(await getJson(stackUrl(lane, service, row.resource)))) n += 1;
  }
  return n;
}

test("the race page races both modes, measured", async (t) => {
  mkdirSync(SHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const problems = [];
  page.on("console", (m) => { if (m.type() === "error") problems.push(m.text()); });
  page.on("pageerror", (e) => problems.push(e.message));
  await page.goto(SHOWDOWN);
  await page.waitForSelector("#scenario option", { state: "attached" });

  await t.test("registration: both answer 10, async finishes 10, as the stacks say", async () => {
    const run = await race(page, 1, 10);
    assert.equal(await figure(page, "sync", "answered"), "10 of 10");
    assert.equal(await figure(page, "async", "answered"), "10 of 10");
    assert.equal(await figure(page, "async", "finished"), "10");
    assert.equal(await chip(page, "sync", 201), "10 × 201");
    assert.equal(await chip(page, "async", 202), "10 × 202");
    await pageMatchesApi(page, run, "sync");
    await pageMatchesApi(page, run, "async");
    for (const lane of ["sync", "async"]) {
      const sent = await stackCount(run, lane, "user", (u) => u.email_status === "sent");
      assert.equal(String(sent), await figure(page, lane, "finished"), `${lane}: users with their email`);
      assert.equal(await figure(page, lane, "lost"), "0");
    }
    // A race of ten lasts about a second: the load-levelling chart still
    // draws each lane over its forty buckets, not one line from start to end.
    const lines = await page.$$eval("#chart polyline[data-lane]",
      (ls) => ls.map((l) => [l.dataset.lane, l.getAttribute("points").split(" ").length]));
    assert.deepEqual(lines.map(([mode]) => mode), ["sync", "async"]);
    for (const [mode, points] of lines) assert.ok(points >= 40, `${mode}: ${points} points`);
    // The queue depth is drawn through the server's samples, and each of
    // them is marked: a line between two ticks was not measured.
    const samples = run.timeline.filter((s) => s.async_depth !== null).length;
    const ticks = await page.$eval('#chart path[data-kind="depth-samples"]',
      (p) => p.getAttribute("d").split("M").length - 1);
    assert.ok(samples > 0, "the race's queues were sampled");
    assert.equal(ticks, samples, "a tick per queue sample");
    // Every note of the race (a cold pool, say) is on the page.
    const notes = await page.textContent("#notes");
    for (const note of run.notes) assert.ok(notes.includes(note), note);
    // The gauges are the registration's own: the user service's workers and
    // the email queue, not the previous scenario's.
    await page.waitForFunction(() =>
      document.querySelector("#lane-sync .gauges")?.textContent.startsWith("user workers:")
        && document.querySelector('#lane-async .gauges [data-queue="email.send"]'),
    null, { timeout: 5000 });
    await page.screenshot({ path: `${SHOTS}/race-registration.png`, fullPage: true });
  });

  await t.test("order saga: both answer 10, async finishes 10, stock exact", async () => {
    const run = await race(page, 5, 10);
    assert.equal(await chip(page, "sync", 400), "10 × 400");
    assert.equal(await chip(page, "async", 202), "10 × 202");
    assert.equal(await figure(page, "async", "finished"), "10");
    await pageMatchesApi(page, run, "sync");
    await pageMatchesApi(page, run, "async");
    for (const lane of ["sync", "async"]) {
      const failed = await stackCount(run, lane, "order", (o) => o.status === "failed" && o.failure_reason === "payment declined");
      assert.equal(String(failed), await figure(page, lane, "finished"), `${lane}: orders declined by design`);
      const checks = await page.textContent(`#lane-${lane} .checks`);
      assert.match(checks, /stock exact/);
      const stock = await getJson(stackUrl(lane, "inventory", "/stock/1"));
      assert.equal(stock.reserved, 0, `${lane}: nothing left reserved`);
    }
    await page.screenshot({ path: `${SHOTS}/race-order.png`, fullPage: true });
  });

  await t.test("payment stopped: sync answers 503, async accepts and waits; started: every order finishes", async () => {
    await page.selectOption("#scenario", "5");
    await page.click("#ds-stop");
    await page.waitForFunction(() => document.querySelector("#status").textContent.includes("payment stopped"), null, { timeout: LIMIT });
    const refused = await fetch(stackUrl("sync", "payment", "/health")).then(() => false, () => true);
    assert.ok(refused, "the sync payment service really is gone");
    await race(page, 5, 10, "following");
    await page.waitForFunction(() => document.querySelector('#lane-sync [data-k="answered"]')?.textContent === "10 of 10", null, { timeout: LIMIT });
    assert.equal(await chip(page, "sync", 503), "10 × 503");
    assert.equal(await figure(page, "async", "pending"), "10");
    // The queue holds the work: ten payment requests waiting, nobody consuming.
    await page.waitForFunction(() => {
      const cells = [...document.querySelectorAll('#lane-async [data-queue="payment.requests"] td')].map((c) => c.textContent);
      return cells[1] === "10" && cells[2] === "0";
    }, null, { timeout: LIMIT });
    await page.screenshot({ path: `${SHOTS}/payment-down.png`, fullPage: true });

    await page.click("#ds-start");
    await page.waitForFunction(() => document.body.dataset.state === "done", null, { timeout: LIMIT });
    const run = await currentRace();
    assert.equal(await figure(page, "async", "finished"), "10");
    assert.equal(await figure(page, "async", "pending"), "0");
    await pageMatchesApi(page, run, "sync");
    await pageMatchesApi(page, run, "async");
    for (const lane of ["sync", "async"]) {
      assert.match(await page.textContent(`#lane-${lane} .checks`), /stock exact/);
    }
    await page.screenshot({ path: `${SHOTS}/payment-back.png`, fullPage: true });
  });

  await t.test("usable by keyboard: Tab reaches Race, Enter races", async () => {
    await page.reload();
    await page.waitForSelector("#scenario option", { state: "attached" });
    const before = (await currentRace()).id;
    let focused = "";
    for (let i = 0; i < 20 && focused !== "race"; i++) {
      await page.keyboard.press("Tab");
      focused = await page.evaluate(() => document.activeElement?.id ?? "");
    }
    assert.equal(focused, "race");
    await page.keyboard.press("Enter");
    await page.waitForFunction((id) => Number(document.body.dataset.race) > id && document.body.dataset.state === "done", before, { timeout: LIMIT });
  });

  await t.test("usable on a phone: 390 × 844, nothing wider than the screen", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    const width = await page.evaluate(() => document.scrollingElement.scrollWidth);
    assert.ok(width <= 390, `the page is ${width} px wide`);
    await page.screenshot({ path: `${SHOTS}/phone.png`, fullPage: true });
  });

  assert.deepEqual(problems, [], "no console errors");
});
