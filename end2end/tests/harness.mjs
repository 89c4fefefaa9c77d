// The browser suite's harness (not a test file itself): the server under test, the browser,
// and the helpers the journeys share (pages, identity checks, the card page, staff sign-in).
//
// One `patriotpay serve --demo` runs for the whole suite, on ephemeral ports and a fresh data
// directory; `startSuite` and `stopSuite` are the describe's `before` and `after`.

import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createHmac } from 'node:crypto';
import { chromium } from 'playwright-core';
import { startA11y, stopA11y, checkA11y } from './a11y.mjs';
import { shoot } from './screenshots.mjs';

export const execFileP = promisify(execFile);

const BIN = process.env.PATRIOTPAY_BIN;
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'test-results');
const STARTUP_TIMEOUT_MS = 60_000;
export const STEP_TIMEOUT_MS = 15_000;
export const TEST_TIMEOUT_MS = 120_000;

/** Server state shared by the tests (set by `startSuite`). */
export const server = {
  child: null,
  env: null,
  dataDir: null,
  portalUrl: null,
  sandboxUrl: null,
  firstLink: null,
  stdout: '',
  stderr: '',
  exited: null,
};
/** The one Chromium of the suite (set by `startSuite`). */
export let browser;

/** The environment for the server and `demo-link`: ephemeral ports, a fresh data dir. */
function serverEnv(dataDir) {
  const env = { ...process.env };
  delete env.DATABASE_URL;
  if (process.env.E2E_DATABASE_URL) env.DATABASE_URL = process.env.E2E_DATABASE_URL;
  env.PATRIOTPAY_ADDR = '127.0.0.1:0';
  env.PATRIOTPAY_SANDBOX_ADDR = '127.0.0.1:0';
  env.PATRIOTPAY_DATA_DIR = dataDir;
  delete env.PATRIOTPAY_PUBLIC_URL;
  delete env.PATRIOTPAY_SANDBOX_PUBLIC_URL;
  return env;
}

/** Starts `patriotpay serve --demo` and resolves once the demo pay link has been printed. */
function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, ['serve', '--demo'], { env: server.env, stdio: ['ignore', 'pipe', 'pipe'] });
    server.child = child;
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => { server.stderr += chunk; });
    let sawLinkIntro = false;
    let settled = false;
    const fail = (msg) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`${msg}\n--- server stdout ---\n${server.stdout}\n--- server stderr ---\n${server.stderr}`));
    };
    const timer = setTimeout(() => fail(`no demo pay link printed within ${STARTUP_TIMEOUT_MS / 1000} s`), STARTUP_TIMEOUT_MS);
    child.on('error', (e) => fail(`could not start ${BIN}: ${e.message}`));
    child.on('exit', (code, signal) => {
      server.exited = { code, signal };
      fail(`server exited early (code ${code}, signal ${signal})`);
    });
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      server.stdout += line + '\n';
      if (settled) return;
      let m;
      if ((m = line.match(/^PatriotPay portal:\s+(http\S+)\s*$/))) server.portalUrl = m[1].replace(/\/$/, '');
      else if ((m = line.match(/^Sandbox card processor:\s+(http\S+)\s*$/))) server.sandboxUrl = m[1].replace(/\/$/, '');
      else if (line.startsWith('Open this demo pay link')) sawLinkIntro = true;
      else if (sawLinkIntro && /^https?:\/\/\S+\/p\/\S+$/.test(line.trim())) {
        server.firstLink = line.trim();
        if (!server.portalUrl || !server.sandboxUrl) return fail('pay link printed before the portal and sandbox URLs');
        settled = true;
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

/** Stops the server: Ctrl-C first (graceful), SIGKILL if it lingers. */
async function stopServer() {
  const child = server.child;
  if (!child || server.exited || child.exitCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGINT');
  const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await gone;
  clearTimeout(t);
}

/** The describe's `before`: the server on a fresh data directory, Chromium, the axe context. */
export async function startSuite() {
  assert.ok(BIN, 'Set PATRIOTPAY_BIN to the patriotpay binary, e.g. PATRIOTPAY_BIN=$CARGO_TARGET_DIR/debug/patriotpay npm test');
  server.dataDir = await mkdtemp(join(tmpdir(), 'patriotpay-e2e-'));
  server.env = serverEnv(server.dataDir);
  await startServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
  await startA11y(browser);
}

/** The describe's `after`. */
export async function stopSuite() {
  await stopA11y();
  await browser?.close();
  await stopServer();
  if (server.dataDir) await rm(server.dataDir, { recursive: true, force: true });
}

/** A fresh pay link for demo patient `n`, from `patriotpay demo-link` against the same data. */
export async function demoLink(n) {
  const env = { ...server.env, PATRIOTPAY_PUBLIC_URL: server.portalUrl };
  let out;
  try {
    out = await execFileP(BIN, ['demo-link', '--patient', String(n)], { env, timeout: 60_000 });
  } catch (e) {
    throw new Error(`demo-link --patient ${n} failed: ${e.message}\n--- stdout ---\n${e.stdout}\n--- stderr ---\n${e.stderr}`);
  }
  const last = out.stdout.trim().split('\n').at(-1).trim();
  assert.match(last, /^https?:\/\/\S+\/p\/\S+$/, `demo-link's last line is not a pay link:\n${out.stdout}`);
  assert.ok(last.startsWith(server.portalUrl + '/'), `demo-link URL ${last} is not on the running portal ${server.portalUrl}`);
  return last;
}

/** A practice's guarantor invitation for demo patient `n`, from `patriotpay demo-invite`. */
export async function demoInvite(n) {
  const env = { ...server.env, PATRIOTPAY_PUBLIC_URL: server.portalUrl };
  let out;
  try {
    out = await execFileP(BIN, ['demo-invite', '--patient', String(n)], { env, timeout: 60_000 });
  } catch (e) {
    throw new Error(`demo-invite --patient ${n} failed: ${e.message}\n--- stdout ---\n${e.stdout}\n--- stderr ---\n${e.stderr}`);
  }
  const last = out.stdout.trim().split('\n').at(-1).trim();
  assert.match(last, /^https?:\/\/\S+\/g\/\S+$/, `demo-invite's last line is not an invitation link:\n${out.stdout}`);
  assert.ok(last.startsWith(server.portalUrl + '/'), `demo-invite URL ${last} is not on the running portal ${server.portalUrl}`);
  return last;
}

/**
 * Runs one journey in a fresh JavaScript-less browser context. On failure: a screenshot and
 * the page's HTML go to test-results/, and the server's stderr is printed.
 */
export async function inBrowser(name, fn) {
  const context = await browser.newContext({ javaScriptEnabled: false });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  const page = await context.newPage();
  try {
    await fn(page);
  } catch (err) {
    const slug = name.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase();
    try {
      await mkdir(RESULTS_DIR, { recursive: true });
      await page.screenshot({ path: join(RESULTS_DIR, `${slug}.png`), fullPage: true });
      await writeFile(join(RESULTS_DIR, `${slug}.html`), await page.content());
      console.error(`[e2e] "${name}" failed at ${page.url()}; screenshot: test-results/${slug}.png`);
    } catch (shotErr) {
      console.error(`[e2e] could not save a screenshot for "${name}": ${shotErr.message}`);
    }
    console.error(`[e2e] --- server stderr ---\n${server.stderr}\n[e2e] --- end server stderr ---`);
    throw err;
  } finally {
    await context.close();
  }
}

/** A catalog message (see `catalog` in a11y.mjs) with its arguments filled in, as the pages
 *  write it (the portal's Fluent bundles add no isolation marks). */
export function text(messages, key, args = {}) {
  const message = messages[key];
  assert.ok(message !== undefined, `no message ${key} in the catalog`);
  return message.replace(/\{ \$([a-z_]+) \}/g, (_, name) => {
    assert.ok(name in args, `${key} needs the argument ${name}`);
    return args[name];
  });
}

// ---- small page helpers -------------------------------------------------------------------

export function path(page) {
  return new URL(page.url()).pathname;
}

/** Waits until the page is at `expectedPath` on the portal's origin. */
export async function atPortal(page, expectedPath) {
  await page.waitForURL((u) => u.origin === server.portalUrl && u.pathname === expectedPath);
  assert.equal(path(page), expectedPath);
  // Every page the journeys reach is checked for WCAG 2.1 AA violations (once per kind).
  await checkA11y(page);
}

/** Waits until the locator is visible (fails with the locator in the message otherwise). */
export async function visible(locator) {
  await locator.waitFor({ state: 'visible' });
}

export async function heading(page, name) {
  await visible(page.getByRole('heading', { level: 1, name, exact: true }));
}

export async function verifyDob(page, { month, day, year }) {
  await page.getByLabel('Month', { exact: true }).fill(month);
  await page.getByLabel('Day', { exact: true }).fill(day);
  await page.getByLabel('Year', { exact: true }).fill(year);
  await page.getByRole('button', { name: 'Continue', exact: true }).click();
}

/** Opens a pay link: it must land on /verify with the token gone from the address bar. */
export async function openLink(page, link) {
  await page.goto(link);
  await atPortal(page, '/verify');
  const token = new URL(link).pathname.split('/').at(-1);
  assert.ok(!page.url().includes(token), `the token is still in the URL: ${page.url()}`);
  await heading(page, 'Confirm who you are');
}

export async function payAmount(page, amount) {
  const field = page.getByLabel('Amount to pay (USD)', { exact: true });
  await field.fill(amount);
  await page.getByRole('button', { name: 'Pay', exact: true }).click();
}

/** On the sandbox's hosted card page: enters a card and pays (`shot`: a screenshot's name,
 *  taken before the card is entered). */
export async function payOnSandbox(page, { number, exp, cvc }, { shot } = {}) {
  await page.waitForURL((u) => u.origin === server.sandboxUrl && u.pathname.startsWith('/checkout/cs_test_'));
  assert.ok(page.url().startsWith(server.sandboxUrl + '/checkout/cs_test_'), page.url());
  await checkA11y(page);
  if (shot) await shoot(page, shot);
  await page.getByLabel('Card number', { exact: true }).fill(number);
  await page.getByLabel('Expiry (MM / YY)', { exact: true }).fill(exp);
  await page.getByLabel('CVC', { exact: true }).fill(cvc);
  await page.getByRole('button', { name: 'Pay', exact: true }).click();
  await page.waitForURL((u) => u.origin === server.portalUrl);
}

/** The receipt's value for a term of its description list (e.g. "Amount paid"). */
export function receiptValue(page, term) {
  return page.locator(`dl dt:text-is("${term}") + dd`);
}

/** Waits for the receipt: the return from the card page waits for the booking, so it comes next. */
export async function receipt(page) {
  await page.getByRole('heading', { level: 1, name: 'Payment received', exact: true }).waitFor({ timeout: 30_000 });
  await checkA11y(page);
  return {
    amount: (await receiptValue(page, 'Amount paid').innerText()).trim(),
    card: (await receiptValue(page, 'Card').innerText()).trim(),
    remaining: (await receiptValue(page, 'Remaining balance').innerText()).trim(),
  };
}

/** The accessible description of an element: the text of its aria-describedby targets. */
export async function accessibleDescription(page, locator) {
  const ids = ((await locator.getAttribute('aria-describedby')) ?? '').split(/\s+/).filter(Boolean);
  const parts = [];
  for (const id of ids) parts.push((await page.locator(`[id="${id}"]`).textContent()).replace(/\s+/g, ' ').trim());
  return parts.join(' ');
}

/** Opens an invitation and answers the dependant's identity questions. A browser signed in to
 * an account is asked first (a plain GET never swaps a session) and continues with it. */
export async function answerInvitation(page, link, patient, { signedIn = false } = {}) {
  await page.goto(link);
  if (signedIn) {
    await heading(page, 'You are signed in');
    await page.getByRole('button', { name: 'Continue with the account you are signed in to', exact: true }).click();
  }
  await atPortal(page, '/guarantor/verify');
  const token = new URL(link).pathname.split('/').at(-1);
  assert.ok(!page.url().includes(token), `the invitation token is still in the URL: ${page.url()}`);
  await heading(page, 'Confirm who you are paying for');
  await page.getByLabel('Month', { exact: true }).fill(patient.month);
  await page.getByLabel('Day', { exact: true }).fill(patient.day);
  await page.getByLabel('Year', { exact: true }).fill(patient.year);
  await page.getByLabel('ZIP code', { exact: true }).fill(patient.zip);
  await page.getByRole('button', { name: 'Continue', exact: true }).click();
  await atPortal(page, '/guarantor/accept');
  await heading(page, 'Accept the invitation');
  await visible(page.getByText(`${patient.name}'s statements`, { exact: false }).first());
}

/** The code in the newest sign-up email to `email`, from the demo's outbox viewer (newest first). */
export async function emailedCode(email) {
  const html = await (await fetch(`${server.portalUrl}/dev/outbox`)).text();
  const mine = html.split('<li class="card dev-message">').slice(1)
    .filter((li) => li.includes(`>${email}</span>`) && li.includes('confirm-code'));
  assert.ok(mine.length > 0, `no sign-up code email to ${email} in the outbox`);
  const m = mine[0].match(/account is (\d{8})\./);
  assert.ok(m, `no eight-digit code in: ${mine[0]}`);
  return m[1];
}

export async function signIn(page, { email, password }) {
  await page.getByLabel('Email address', { exact: true }).fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

export function cents(dollarText) {
  const m = dollarText.replace(/,/g, '').match(/^\$(\d+)\.(\d{2})$/);
  assert.ok(m, `not a dollar amount: ${dollarText}`);
  return Number(m[1]) * 100 + Number(m[2]);
}

export function dollars(c) {
  return `$${(Math.trunc(c / 100)).toLocaleString('en-US')}.${String(c % 100).padStart(2, '0')}`;
}


// ---- staff ---------------------------------------------------------------------------------

/** The demo practice's id, from `patriotpay keys status` (every practice has a data key). */
async function demoPractice() {
  const out = await execFileP(BIN, ['keys', 'status'], { env: server.env, timeout: 60_000 });
  const ids = [...new Set(out.stdout.match(/ten_[0-9a-f]{32}/g) ?? [])].filter((t) => !/^ten_0+$/.test(t));
  assert.equal(ids.length, 1, `one demo practice in keys status:\n${out.stdout}`);
  return ids[0];
}

/** A staff account added as an operator adds one; its set-up link on the running portal. */
export async function addStaff(email, role, name = 'Dana Ruiz') {
  const practice = await demoPractice();
  const env = { ...server.env, PATRIOTPAY_PUBLIC_URL: server.portalUrl };
  const out = await execFileP(BIN, ['users', 'add', '--email', email, '--name', name, '--role', role, '--practice', practice], { env, timeout: 60_000 });
  const link = out.stdout.trim().split('\n').at(-1).trim();
  assert.match(link, /\/staff\/enrol\/\S+$/, `users add printed no set-up link:\n${out.stdout}`);
  return { email, password: 'a long staff passphrase for e2e', link };
}

/** RFC 6238 code (SHA-1, 6 digits, 30 s) for a base32 secret, as an authenticator app makes. */
function totpCode(base32) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of base32.replace(/[\s=]/g, '').toUpperCase()) bits += alphabet.indexOf(ch).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const o = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(o) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

/** Opens the set-up link, sets the password and TOTP, then signs in with a recovery code (a
 *  TOTP code may be used once, and the next one is up to 30 s away). Ends on the staff home. */
export async function enrolAndSignIn(page, staff) {
  await page.goto(staff.link);
  await atPortal(page, '/staff/enrol');
  const secret = (await page.locator('code.secret').innerText()).trim();
  await page.getByLabel('Password', { exact: true }).fill(staff.password);
  await page.getByLabel('Confirm password', { exact: true }).fill(staff.password);
  await page.getByLabel('Authentication code', { exact: true }).fill(totpCode(secret));
  await page.getByRole('button', { name: 'Finish set-up', exact: true }).click();
  await heading(page, 'Save your recovery codes');
  const recovery = (await page.locator('ol.recovery-codes code').first().innerText()).trim();
  await page.getByRole('link', { name: 'Continue to sign in', exact: true }).click();
  await atPortal(page, '/staff/login');
  await page.getByLabel('Email', { exact: true }).fill(staff.email);
  await page.getByLabel('Password', { exact: true }).fill(staff.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await atPortal(page, '/staff/mfa');
  await page.getByLabel('Authentication code', { exact: true }).fill(recovery);
  await page.getByRole('button', { name: 'Verify', exact: true }).click();
  await atPortal(page, '/staff');
}