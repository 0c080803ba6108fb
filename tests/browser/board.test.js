// The web board in a real browser: Debian's chromium, headless, driven by
// playwright-core, against a real kanband started with --http_listen. Tasks
// are made and read through gRPC by the real kanbanctl, so what the page
// shows is checked against the service itself.
//
// Environment (set by tests/browser/CMakeLists.txt): KANBAND, KANBANCTL,
// KANBAN_ARTIFACT_DIR (the screenshot goes there), CHROMIUM (default
// /usr/bin/chromium).
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawn, execFile, execFileSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { chromium } = require("playwright-core");

const KANBAND = process.env.KANBAND;
const KANBANCTL = process.env.KANBANCTL;
const ARTIFACTS = process.env.KANBAN_ARTIFACT_DIR || os.tmpdir();
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

let browser;
const servers = [];
let grpcAddress, baseUrl;  // The first server's (no auth).

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// Starts kanband with its own database and both ports on 127.0.0.1:0;
// resolves to { grpc, url, dir, log, process } once it serves.
async function startKanband(extraArgs = [], prepare = () => {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kanban-browser-"));
  prepare(dir);
  const logPath = path.join(dir, "kanband.log");
  const log = fs.openSync(logPath, "a");
  const child = spawn(KANBAND, [
    "--listen=127.0.0.1:0", `--port_file=${dir}/port`, "--http_listen=127.0.0.1:0",
    `--http_port_file=${dir}/http_port`, `--db=${dir}/kanban.db`, "--log_rpcs", ...extraArgs,
  ], { stdio: ["ignore", log, log] });
  const server = { dir, log: logPath, process: child };
  servers.push(server);
  const portFile = path.join(dir, "port");
  const giveUp = Date.now() + 20000;
  while (!fs.existsSync(portFile)) {
    if (child.exitCode !== null || Date.now() > giveUp) {
      throw new Error("kanband did not start; its log:\n" + fs.readFileSync(logPath, "utf8"));
    }
    await sleep(50);
  }
  server.grpc = "127.0.0.1:" + fs.readFileSync(portFile, "utf8").trim();
  server.url = `http://127.0.0.1:${fs.readFileSync(path.join(dir, "http_port"), "utf8").trim()}/`;
  return server;
}

// kanbanctl --json ...: the parsed JSON it prints.
function ctl(...args) {
  return new Promise((resolve, reject) => {
    execFile(KANBANCTL, ["--server", grpcAddress, "--json", ...args], { timeout: 30000 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`kanbanctl ${args.join(" ")}: ${stderr || error.message}`));
        else resolve(JSON.parse(stdout));
      });
  });
}

async function openBoard(url = baseUrl, live = true) {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  page.on("pageerror", (e) => console.error("page error:", e.message));
  await page.goto(url);
  if (live) await page.locator('#conn[data-state="live"]').waitFor({ timeout: 15000 });
  return page;
}

const cardIn = (status, id) => `section.column[data-status="${status}"] .card[data-id="${id}"]`;

before(async () => {
  assert.ok(KANBAND && KANBANCTL, "KANBAND and KANBANCTL must name the built programs");
  assert.ok(fs.existsSync(CHROMIUM),
    `${CHROMIUM} not found: apt-get install -y chromium (see deploy/quickstart.sh)`);
  const server = await startKanband();
  grpcAddress = server.grpc;
  baseUrl = server.url;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
});

after(async () => {
  if (browser) await browser.close();
  for (const server of servers) {
    if (server.process.exitCode === null) {
      const exited = new Promise((r) => server.process.once("exit", r));
      server.process.kill("SIGTERM");
      await exited;
    }
    fs.rmSync(server.dir, { recursive: true, force: true });
  }
});

test("the board loads with its columns, archived behind a toggle", async () => {
  const page = await openBoard();
  const columns = await page.locator("section.column").evaluateAll(
    (sections) => sections.map((s) => s.dataset.status));
  assert.deepEqual(columns, ["TRIAGE", "TODO", "READY", "RUNNING", "BLOCKED", "REVIEW", "DONE"]);
  await page.locator("#show-archived").check();
  await page.locator('section.column[data-status="ARCHIVED"]').waitFor();
  assert.equal(await page.locator("#board").inputValue(), "default");
  await page.close();
});

test("a task created through gRPC appears live; drags move it everywhere; refused moves snap back", async () => {
  const page = await openBoard();
  const other = await openBoard();

  // Created by kanbanctl (gRPC): the card appears without a reload.
  const started = Date.now();
  const task = await ctl("create", "--title", "from grpc", "--priority", "3", "--label", "ui");
  await page.locator(cardIn("READY", task.id)).waitFor({ timeout: 5000 });
  const appeared = Date.now() - started;
  assert.ok(appeared < 2000, `the card took ${appeared} ms to appear`);
  const text = await page.locator(cardIn("READY", task.id)).innerText();
  assert.match(text, /from grpc/);
  assert.match(text, /P3/);
  assert.match(text, /ui/);
  await other.locator(cardIn("READY", task.id)).waitFor({ timeout: 5000 });

  // Dragged to BLOCKED on one page: the other page follows, and so does GetTask.
  await page.dragAndDrop(cardIn("READY", task.id), 'section.column[data-status="BLOCKED"]');
  await other.locator(cardIn("BLOCKED", task.id)).waitFor({ timeout: 5000 });
  await page.locator(`${cardIn("BLOCKED", task.id)}:not(.pending)`).waitFor({ timeout: 5000 });
  const blocked = await ctl("get", task.id);
  assert.equal(blocked.status, "BLOCKED");
  assert.equal(Number(blocked.version), 2);

  // BLOCKED -> REVIEW is not in the table: the card snaps back and the
  // server's message is shown.
  await page.dragAndDrop(cardIn("BLOCKED", task.id), 'section.column[data-status="REVIEW"]');
  const message = page.locator("#message");
  await message.waitFor({ state: "visible", timeout: 5000 });
  assert.match(await message.innerText(), /REVIEW/);
  await page.locator(`${cardIn("BLOCKED", task.id)}:not(.pending)`).waitFor({ timeout: 5000 });
  assert.equal(await page.locator(cardIn("REVIEW", task.id)).count(), 0);
  assert.equal((await ctl("get", task.id)).status, "BLOCKED");

  // A move made elsewhere (through gRPC) shows up too.
  await ctl("move", task.id, "todo");
  await page.locator(cardIn("TODO", task.id)).waitFor({ timeout: 5000 });

  // Keyboard: the card's "Move to" select.
  await page.locator(`${cardIn("TODO", task.id)} select`).selectOption("READY");
  await other.locator(cardIn("READY", task.id)).waitFor({ timeout: 5000 });
  assert.equal((await ctl("get", task.id)).status, "READY");

  // A worker claims it: the card shows the worker and a lease countdown,
  // and the workers panel lists the worker with its lease.
  await ctl("claim", "--worker", "gpu-7");
  const running = page.locator(cardIn("RUNNING", task.id));
  await running.waitFor({ timeout: 5000 });
  await running.locator(".worker", { hasText: "gpu-7" }).waitFor();
  assert.match(await running.locator(".lease").innerText(), /^lease \d+s$/);
  await page.locator("#workers-toggle").click();
  const row = page.locator("#workers-body tr", { hasText: "gpu-7" });
  await row.waitFor({ timeout: 5000 });
  assert.match(await row.innerText(), /from grpc/);
  await page.locator("#workers-toggle").click();

  // Created in the page: it appears on the other page too.
  await page.locator("#create-title").fill("made in the page");
  await page.locator("#create-priority").fill("1");
  await page.locator("#create-labels").fill("web, docs");
  await page.locator("#create").getByRole("button", { name: "Create" }).click();
  const made = other.locator('section.column[data-status="READY"] .card', { hasText: "made in the page" });
  await made.waitFor({ timeout: 5000 });
  assert.match(await made.innerText(), /docs/);

  // The card's details: body, comments (adding one) and its history.
  await page.locator(cardIn("RUNNING", task.id)).click();
  await page.locator("#details[open]").waitFor();
  assert.equal(await page.locator("#details-title").innerText(), "from grpc");
  await page.locator("#comment-body").fill("looks right");
  await page.locator("#comment-form button").click();
  await page.locator("#details-comments li", { hasText: "looks right" }).waitFor({ timeout: 5000 });
  await page.locator("#details-history li", { hasText: "created" }).waitFor({ timeout: 5000 });
  await page.locator("#details-history li", { hasText: "moved" }).first().waitFor({ timeout: 5000 });
  await page.keyboard.press("Escape");
  await page.locator("#details[open]").waitFor({ state: "detached" });

  await page.screenshot({ path: path.join(ARTIFACTS, "board.png"), fullPage: true });
  await page.close();
  await other.close();
});

test("with --auth=token the page asks for a token, keeps it in the tab, and stays live", async () => {
  let secret = "";
  const server = await startKanband(["--auth=token"], (dir) => {
    secret = execFileSync(KANBAND, ["token", "create", `--db=${dir}/kanban.db`, "--role=admin",
      "--name=ops"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  });
  assert.match(secret, /^kb_/);
  const page = await openBoard(server.url, false);
  await page.locator("#login[open]").waitFor({ timeout: 15000 });
  await page.locator("#login-token").fill("kb_not-a-token");
  await page.locator("#login-form button").click();
  await page.locator("#login-error", { hasText: "unknown token" }).waitFor({ timeout: 5000 });
  await page.locator("#login-token").fill(secret);
  await page.locator("#login-form button").click();
  await page.locator('#conn[data-state="live"]').waitFor({ timeout: 15000 });
  assert.equal(await page.evaluate(() => sessionStorage.getItem("kanban-token")), secret);

  // The event stream (token in ?access_token=) delivers a task made over gRPC.
  const out = execFileSync(KANBANCTL, ["--server", server.grpc, "--token", secret, "--json",
    "create", "--title", "behind auth"], { encoding: "utf8" });
  const task = JSON.parse(out);
  await page.locator(cardIn("READY", task.id)).waitFor({ timeout: 5000 });
  await page.close();
  // No log line carries the secret, though it travelled in URLs.
  assert.ok(!fs.readFileSync(server.log, "utf8").includes(secret), "the log shows the token");
});
