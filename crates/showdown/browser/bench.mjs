// A benchmark, not a test: races COUNT requests of SCENARIO on the page in
// Debian's chromium and reports the longest animation frame the page had
// (the page must stay responsive through a 1,000-request race) and the
// race's figures as the showdown measured them.
//
//   SHOWDOWN_URL=http://127.0.0.1:3000 SCENARIO=5 COUNT=1000 node bench.mjs
import { chromium } from "playwright-core";

const SHOWDOWN = process.env.SHOWDOWN_URL ?? "http://127.0.0.1:3000";
const SCENARIO = process.env.SCENARIO ?? "5";
const COUNT = process.env.COUNT ?? "1000";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
await page.goto(SHOWDOWN);
await page.waitForSelector("#scenario option", { state: "attached" });
await page.evaluate(() => {
  window.frames_ = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.frames_.push(e.duration);
  }).observe({ type: "long-animation-frame", buffered: false });
});
const before = await page.evaluate(() => Number(document.body.dataset.race || 0));
await page.selectOption("#scenario", SCENARIO);
await page.check(`input[name=count][value="${COUNT}"]`);
const started = Date.now();
await page.click("#race");
await page.waitForFunction(
  (id) => Number(document.body.dataset.race) > id && document.body.dataset.state === "done",
  before, { timeout: 900_000, polling: 500 },
);
const frames = await page.evaluate(() => window.frames_);
const race = await (await fetch(`${SHOWDOWN}/api/races/current`)).json();
await page.screenshot({ path: process.env.SCREENSHOT ?? "bench.png", fullPage: true });
await browser.close();
const longest = frames.length ? Math.max(...frames) : 0;
console.log(JSON.stringify({
  scenario: race.scenario,
  count: race.count,
  race_seconds: (Date.now() - started) / 1000,
  long_frames: frames.length,
  longest_frame_ms: Math.round(longest),
  frames_over_100_ms: frames.filter((d) => d > 100).length,
  lanes: race.lanes.map((l) => ({ mode: l.mode, lost: l.lost, ...l.summary, statuses: l.summary.statuses })),
}, null, 1));
