// The README's dashboard screenshots, taken by scripts/screenshots while the demo drains a
// burst: the overview as the workers scale up, the queue page once the backlog is gone (its
// chart up and down, the scaling decisions), and the poisoned job's page with its error.
//   DASHBOARD_URL, POISONED_JOB, CHROMIUM, OUT (the directory to write to)
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const url = process.env.DASHBOARD_URL;
const job = process.env.POISONED_JOB;
const out = process.env.OUT ?? "docs/images";
mkdirSync(out, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const stat = (label) =>
    page.locator("#stats div", { has: page.locator("dt", { hasText: label }) }).locator("dd");
  await page.goto(url);
  // Scaled up and draining.
  await page.waitForFunction(() => {
    const dds = [...document.querySelectorAll("#stats div")];
    const value = (l) => Number(dds.find((d) => d.querySelector("dt").textContent === l)?.querySelector("dd").textContent);
    // Halfway through the drain: the chart shows the climb and the slope down.
    return value("Workers asked") >= 3 && value("Backlog (lag + pending)") < 1000;
  }, null, { timeout: 90000 });
  await page.screenshot({ path: join(out, "dashboard-overview.png") });
  console.log("overview taken at backlog", await stat("Backlog (lag + pending)").textContent());

  await page.goto(new URL("/queues/default/demo", url).href);
  await page.waitForFunction(() => {
    const dds = [...document.querySelectorAll("#stats div")];
    const value = (l) => dds.find((d) => d.querySelector("dt").textContent === l)?.querySelector("dd").textContent;
    return value("Lag") === "0" && value("Pending") === "0";
  }, null, { timeout: 120000 });
  await page.screenshot({ path: join(out, "dashboard-queue.png"), fullPage: true });

  await page.goto(new URL(`/jobs?id=${encodeURIComponent(job)}`, url).href);
  await page.locator("#timeline tbody tr", { hasText: "dead" }).waitFor();
  await page.screenshot({ path: join(out, "dashboard-job.png"), fullPage: true });
} finally {
  await browser.close();
}
