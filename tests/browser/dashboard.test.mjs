// What a person sees in the operator's dashboard, in a real chromium (Debian's, through
// playwright-core). Started by tests/dashboard_browser.rs against `run --local` on the demo,
// with the environment:
//   DASHBOARD_URL   the dashboard, http://127.0.0.1:PORT/
//   DASHBOARD_MODE  "read-only" or "actions"
//   DASHBOARD_TOKEN the bearer token (actions mode)
//   POISONED_JOB    the id of a job that went to the dead letters
//   CHROMIUM        the browser executable; SCREENSHOTS the directory for screenshots
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const url = process.env.DASHBOARD_URL;
const mode = process.env.DASHBOARD_MODE;
const token = process.env.DASHBOARD_TOKEN ?? "";
const job = process.env.POISONED_JOB;
const shots = process.env.SCREENSHOTS ?? "target/screenshots";
assert.ok(url && mode && job, "DASHBOARD_URL, DASHBOARD_MODE and POISONED_JOB are required");
mkdirSync(shots, { recursive: true });

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    // Root (CI, containers) cannot use chromium's sandbox.
    args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
  });
});
after(async () => browser?.close());

async function open(path, viewport = { width: 1280, height: 900 }) {
  const page = await browser.newPage({ viewport });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  await page.goto(new URL(path, url).href);
  return { page, errors };
}

const shot = (page, name) => page.screenshot({ path: join(shots, name), fullPage: true });

if (mode === "read-only") {
  test("the overview lists the queue with its numbers and draws the chart", async () => {
    const { page, errors } = await open("/");
    const row = page.locator("#queues tbody tr", { hasText: "default/demo" });
    await row.waitFor();
    const headers = await page.locator("#queues thead th").allTextContents();
    const cells = await row.locator("td").allTextContents();
    const cell = (h) => cells[headers.indexOf(h)];
    assert.equal(cell("Dead letters"), "1");
    assert.ok(Number(cell("Length")) >= 21, `length ${cell("Length")}`);
    assert.equal(await page.getByRole("img", { name: /Backlog/ }).count(), 1);
    // A line, not a dot: the chart grows as the page redraws it from the operator's readings.
    await page.waitForFunction(
      () => (document.querySelector("svg.chart polyline.backlog")?.getAttribute("points") ?? "")
        .split(" ").length >= 2,
      null,
      { timeout: 20000 },
    );
    // Live: the page redraws from its JSON without reloading.
    await page.locator("#live", { hasText: "updated" }).waitFor();
    assert.equal(await page.evaluate(() => performance.getEntriesByType("navigation").length), 1);
    await shot(page, "overview.png");
    assert.deepEqual(errors, []);
  });

  test("the queue page shows the dead letter's error and no action button", async () => {
    const { page, errors } = await open("/");
    await page.getByRole("link", { name: "default/demo" }).click();
    await page.getByRole("heading", { name: "Queue default/demo" }).waitFor();
    const letter = page.locator("#dead tbody tr", { hasText: job });
    await letter.waitFor();
    assert.match(await letter.innerText(), new RegExp(`poisoned job ${job}`));
    assert.equal(await page.getByRole("button", { name: /Replay|Purge/ }).count(), 0);
    assert.equal(await page.getByLabel("Action token").count(), 0);
    assert.ok(await page.locator("#decisions tbody tr", { hasText: "ScaledUp" }).count() >= 1);
    await shot(page, "queue.png");
    assert.deepEqual(errors, []);
  });

  test("a job is found from the search box, with its attempts and error", async () => {
    const { page, errors } = await open("/");
    await page.getByLabel("Job id").fill(job);
    await page.getByLabel("Job id").press("Enter");
    await page.getByRole("heading", { name: `Job ${job}` }).waitFor();
    const stats = await page.locator("#stats").innerText();
    assert.match(stats, /State\s+dead/);
    assert.match(stats, /poisoned job/);
    const states = await page.locator("#timeline tbody tr td:nth-child(2)").allTextContents();
    assert.equal(states.filter((s) => s === "active").length, 3, states.join(","));
    await shot(page, "job.png");
    assert.deepEqual(errors, []);
  });

  test("the keyboard alone reaches the search box and finds a job", async () => {
    const { page } = await open("/");
    let focused = "";
    for (let i = 0; i < 10 && focused !== "job-search"; i++) {
      await page.keyboard.press("Tab");
      focused = await page.evaluate(() => document.activeElement?.id ?? "");
    }
    assert.equal(focused, "job-search", "Tab reaches the job search box");
    await page.keyboard.type(job);
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: `Job ${job}` }).waitFor();
  });

  test("the schedules page shows the expression, zone and next runs", async () => {
    const { page } = await open("/schedules");
    const row = page.locator("#schedules tbody tr", { hasText: "default/every-minute" });
    await row.waitFor();
    assert.match(await row.innerText(), /0 \* \* \* \* \*\s+UTC/);
  });

  test("on a phone the page fits the screen; wide tables scroll on their own", async () => {
    const { page } = await open("/queues/default/demo", { width: 390, height: 844 });
    await page.locator("#dead tbody tr", { hasText: job }).waitFor();
    const overflow = await page.evaluate(
      () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
    );
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
    await shot(page, "queue-phone.png");
  });
} else {
  test("replaying a dead letter needs the token, then works", async () => {
    const { page, errors } = await open("/queues/default/demo");
    const letter = page.locator("#dead tbody tr", { hasText: job });
    await letter.waitFor();
    await letter.getByRole("button", { name: "Replay" }).click();
    await page.getByRole("alert").filter({ hasText: "missing bearer token" }).waitFor();
    await page.getByLabel("Action token").fill(token);
    await page.locator("#dead tbody tr", { hasText: job }).getByRole("button", { name: "Replay" }).click();
    await page.getByRole("alert").filter({ hasText: "replayed 1 dead letters" }).waitFor();
    await shot(page, "queue-actions.png");
    // Replayed, the poisoned job runs again (and fails again): a fourth attempt.
    const { page: jobPage } = await open(`/jobs?id=${encodeURIComponent(job)}`);
    await jobPage.waitForFunction(
      () => [...document.querySelectorAll("#timeline tbody tr td:nth-child(2)")]
        .filter((td) => td.textContent === "active").length >= 4,
      null,
      { timeout: 30000 },
    );
    assert.deepEqual(errors.filter((e) => !e.includes("401")), []);
  });
}
