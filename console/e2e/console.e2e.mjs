// Browser scenarios for the console, in Debian's headless Chromium driven by playwright-core (never
// Playwright's own browser download). Run by tests/e2e/browser/test_console.py, which starts the real stack
// (command API serving the built console, gateway, runner, projector, simulator) and reads the mails.
//
//   node e2e/console.e2e.mjs <step>     steps: register, main
//   env: BASE_URL, SIM_URL, EMAIL, PASSWORD, VERIFY_URL, OTHER_EMAIL, OTHER_PASSWORD, SHOTS_DIR, CHROMIUM
//
// Prints one JSON line per check; a failure saves SHOTS_DIR/failure-<step>.png and exits 1.
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (k, d) => process.env[k] ?? d ?? (() => { throw new Error(`${k} is not set`); })();
const BASE = env("BASE_URL");
const SIM = env("SIM_URL");
const SHOTS = env("SHOTS_DIR");
const step = process.argv[2];
const T = 30_000; // each wait's own limit (a failure, not a timing assertion)
const log = (check, extra = {}) => console.log(JSON.stringify({ step, check, ...extra }));

// A PNG (8x8, red) for the upload scenario.
const PNG = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAgAAAAIAQMAAAD+wSzIAAAABlBMVEX/AAD///9BHTQRAAAAEUlEQVQI12P4z8DAwMDAAAAJ/wH/Zk9t0wAAAABJRU5ErkJggg==", "base64");

async function scan(sessionId, phone) {
  // The simulated phone scans the session's current QR; 409 while the device is between owners: retry.
  for (let i = 0; i < 40; i++) {
    const r = await fetch(`${SIM}/control/scan`, { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ sessionId, phone }) });
    if (r.status !== 409) {
      if (!r.ok) throw new Error(`scan: HTTP ${r.status} ${await r.text()}`);
      return;
    }
    await new Promise((res) => setTimeout(res, 250));
  }
  throw new Error("scan: still 409");
}

async function login(page, email, password) {
  await page.goto(`${BASE}/login`);
  await page.getByLabel(/^(Correo|E-mail)$/).fill(email);
  await page.getByLabel(/^(Contraseña|Password)$/).fill(password);
  await page.getByRole("button", { name: /^(Iniciar sesión|Log in)$/ }).click();
  await page.waitForURL(/\/console\/sessions/, { timeout: T });
}

async function campaign(page) {
  const n = 3;
  // Paraguayan mobiles (0981 …): a new tenant's default country is 595 (seed 004) and numbers are validated.
  const phones = Array.from({ length: n }, () => "595981" + String(Math.floor(Math.random() * 1e6)).padStart(6, "0"));
  const csv = ["numero,sustantivo,nombre,grupo", ...phones.map((p, i) => `${p},Sr.,Cliente ${i},browser`),
    "not-a-phone,,Bad,browser"].join("\n");
  await page.getByRole("link", { name: /^(Agenda|Address book)$/ }).click();
  await page.getByTestId("import-csv").setInputFiles({ name: "contacts.csv", mimeType: "text/csv", buffer: Buffer.from(csv) });
  const result = page.getByTestId("import-result");
  await result.filter({ hasText: /(importadas|imported) 3/ }).waitFor({ timeout: T });
  await result.locator("li").filter({ hasText: /(línea|line) 5/ }).waitFor({ timeout: T });
  await page.screenshot({ path: join(SHOTS, "address-book.png") });
  log("CSV imported with progress; the bad row is reported with its line");

  await page.getByRole("link", { name: /^(Campañas|Campaigns)$/ }).click();
  await page.getByTestId("new-campaign").click();
  await page.getByTestId("campaign-name").fill("Browser campaign");
  await page.getByTestId("campaign-groups").selectOption("browser");
  await page.getByTestId("campaign-text").fill("Hola {nombre} ({grupo})");
  await page.getByTestId("campaign-preview").filter({ hasText: "Hola Cliente 0 (browser)" }).waitFor({ timeout: T });
  log("template previewed for real recipients");
  await page.getByTestId("pacing-enabled").uncheck();
  await page.getByTestId("campaign-start").click();
  const bar = page.locator('[data-testid="campaign-detail"] [data-testid="campaign-progress"][data-pct="100"]');
  await bar.waitFor({ timeout: 90_000 });
  await page.waitForTimeout(500); // only for the screenshot: let the bar's CSS transition finish
  await page.screenshot({ path: join(SHOTS, "campaign.png") });
  log("campaign progress bar reached 100 %");

  await page.getByRole("link", { name: /^(Panel|Dashboard)$/ }).click();
  await page.waitForFunction((min) => Number(document.querySelector('[data-testid="kpi-sent"]')?.textContent ?? 0) >= min,
    n, { timeout: 90_000 });
  await page.screenshot({ path: join(SHOTS, "dashboard.png") });
  log("dashboard counts the campaign's sends");
}

const steps = {
  async register(page) {
    await page.goto(`${BASE}/register`);
    await page.locator('input[name="name"]').fill("Ada Browser");
    await page.locator('input[name="email"]').fill(env("EMAIL"));
    await page.locator('input[name="password"]').fill(env("PASSWORD"));
    await page.locator('input[name="company"]').fill("Browser Co");
    await page.locator('button[type="submit"]').click();
    await page.getByRole("status").waitFor({ timeout: T });
    log("registered: the page asks to check the e-mail");
  },

  async main(page) {
    // 1. The verification link from the mail, then log in.
    await page.goto(env("VERIFY_URL"));
    await page.getByText(/verificado|verified/i).waitFor({ timeout: T });
    log("e-mail verified through the mailed link");
    await login(page, env("EMAIL"), env("PASSWORD"));
    await page.locator('[data-testid="live-state"].open').waitFor({ timeout: T });
    log("logged in; the WebSocket is live");
    await page.getByText(/Aún no hay números|No numbers yet/).waitFor({ timeout: T });
    await page.screenshot({ path: join(SHOTS, "sessions-empty.png") });

    // 2. Create a session and see the QR image (a PNG data URL from the WebSocket).
    await page.getByTestId("create-session").click();
    const card = page.locator('[data-testid^="session-"]').first();
    const qr = card.getByTestId("qr-image");
    await qr.waitFor({ timeout: T });
    const src = await qr.getAttribute("src");
    if (!src?.startsWith("data:image/png;base64,")) throw new Error(`QR src is ${src?.slice(0, 40)}`);
    const sid = (await card.getAttribute("data-testid")).slice("session-".length);
    await page.screenshot({ path: join(SHOTS, "sessions-qr.png") });
    log("QR image shown", { sessionId: sid });

    // 3. Scan it in the simulator; the badge turns "connected" live (no reload).
    const phone = "519" + String(Math.floor(Math.random() * 1e8)).padStart(8, "0");
    await scan(sid, phone);
    await card.getByTestId("status-badge").filter({ hasText: /^connected$/ }).waitFor({ timeout: T });
    await page.screenshot({ path: join(SHOTS, "sessions-connected.png") });
    log("status turned connected", { phone });
    // A reload keeps the login (one POST /auth/refresh with the HttpOnly cookie) and the live socket.
    await page.reload();
    await page.locator('[data-testid="live-state"].open').waitFor({ timeout: T });
    await page.getByTestId("status-badge").filter({ hasText: /^connected$/ }).first().waitFor({ timeout: T });
    log("a reload restores the login from the refresh cookie");

    // 4. Open a chat with a scripted contact, send a message, see it appear and the ticks reach "read".
    await page.getByRole("link", { name: /^(Chats)$/ }).click();
    const contact = "519" + String(Math.floor(Math.random() * 1e8)).padStart(8, "0");
    await page.getByTestId("new-chat").fill(contact);
    await page.getByRole("button", { name: /^(Abrir|Open)$/ }).click();
    const text = `Hola desde el navegador ${Date.now()}`;
    await page.getByTestId("composer").fill(text);
    await page.getByTestId("send").click();
    const mine = page.locator(".msg.me").filter({ hasText: text });
    await mine.waitFor({ timeout: T });
    log("sent message appeared");
    await mine.locator('[data-testid="ticks"][data-status="read"]').waitFor({ timeout: T });
    log("ticks reached read");
    // The scripted contact answers; the reply shows up live and the chat is in the list.
    await page.locator(".msg.them").first().waitFor({ timeout: T });
    await page.getByTestId(`chat-${contact}@s.whatsapp.net`).waitFor({ timeout: T });
    log("contact's reply and the chat list updated live");

    // 5. Upload an image: progress, then the image message.
    await page.getByTestId("attach").setInputFiles({ name: "pixel.png", mimeType: "image/png", buffer: PNG });
    await page.locator(".msg.me img.thumb").first().waitFor({ timeout: T });
    await page.screenshot({ path: join(SHOTS, "chat.png") });
    log("image uploaded and sent");

    // 6. Phone-sized screen and the language switch.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: join(SHOTS, "chat-phone.png") });
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.getByLabel("Language").selectOption("en");
    await page.getByRole("link", { name: "Numbers" }).waitFor({ timeout: T });
    await page.getByLabel("Language").selectOption("es");
    log("phone-sized layout and language switch");

    // 7. Campaigns (when the API has them): import a CSV, run a small campaign to 100 %, see the dashboard count it.
    if (process.env.CAMPAIGNS === "1") await campaign(page);

    // 8. Team and access: an API key is shown once, then only its last four characters.
    await page.getByRole("link", { name: /^(Equipo y acceso|Team and access)$/ }).click();
    await page.locator('form:has(button:text-matches("Crear clave|Create key")) input').first().fill("browser key");
    await page.getByRole("button", { name: /^(Crear clave|Create key)$/ }).click();
    const key = (await page.getByTestId("new-key").textContent({ timeout: T })) ?? "";
    if (key.length < 16) throw new Error(`API key shown as "${key}"`);
    await page.getByRole("cell", { name: `…${key.slice(-4)}` }).waitFor({ timeout: T });
    await page.screenshot({ path: join(SHOTS, "team.png") });
    log("API key created and shown once");

    // 9. A second tenant sees none of the first tenant's data.
    await page.getByRole("button", { name: /^(Cerrar sesión|Log out)$/ }).click();
    await page.waitForURL(/\/login/, { timeout: T });
    await login(page, env("OTHER_EMAIL"), env("OTHER_PASSWORD"));
    await page.getByText(/Aún no hay números|No numbers yet/).waitFor({ timeout: T });
    if (await page.locator('[data-testid^="session-"]').count()) throw new Error("second tenant sees sessions");
    await page.getByRole("link", { name: /^(Chats)$/ }).click();
    await page.getByText(/Ningún número conectado|No connected number/).waitFor({ timeout: T });
    if (await page.getByText(text).count()) throw new Error("second tenant sees the first tenant's message");
    log("second tenant sees no sessions and no chats of the first");
  },
};

const flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const profile = mkdtempSync(join(tmpdir(), "zs-chromium-")); // a fresh --user-data-dir per run
mkdirSync(SHOTS, { recursive: true });
// launchPersistentContext is how Playwright takes a user data dir (it passes --user-data-dir itself).
const context = await chromium.launchPersistentContext(profile, {
  executablePath: env("CHROMIUM", "/usr/bin/chromium"), headless: true, args: flags,
  viewport: { width: 1280, height: 800 },
});
const page = context.pages()[0] ?? (await context.newPage());
const consoleErrors = [];
page.on("pageerror", (e) => consoleErrors.push(String(e)));
let failed = false;
try {
  if (!steps[step]) throw new Error(`unknown step ${step}`);
  await steps[step](page);
} catch (err) {
  failed = true;
  await page.screenshot({ path: join(SHOTS, `failure-${step}.png`), fullPage: true }).catch(() => {});
  log("FAILED", { error: String(err?.stack ?? err), url: page.url(), pageErrors: consoleErrors });
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
