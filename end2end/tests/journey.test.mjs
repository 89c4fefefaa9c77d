// Real-browser journey through the PatriotPay portal and its sandbox card processor.
//
// Chromium runs with JavaScript DISABLED: every step must work as plain HTML forms, links
// and redirects, the way the portal is built (server-rendered, no hydration).
//
// Run: PATRIOTPAY_BIN=/path/to/patriotpay npm test   (see ../README.md)

import { describe, it, before, after } from 'node:test';
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
import { startA11y, stopA11y, checkA11y, checkedPages, catalog, violationsOf } from './a11y.mjs';

const execFileP = promisify(execFile);

const BIN = process.env.PATRIOTPAY_BIN;
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'test-results');
const STARTUP_TIMEOUT_MS = 60_000;
const STEP_TIMEOUT_MS = 15_000;
const TEST_TIMEOUT_MS = 120_000;

// The demo practice's fictional patients (server/src/demo.rs). Patient 1 owes $112.00;
// patient 3 owes $75.00 + $30.00 + $35.00 + $10.00 = $150.00 before test 2 pays $10.00 of it.
const PATIENT_1 = { month: '03', day: '14', year: '1984', zip: '60614' };
const PATIENT_2 = { month: '11', day: '02', year: '1991', zip: '60657' };
const PATIENT_3 = { month: '06', day: '21', year: '2012', zip: '60622', balance: '$150.00' };
// Patients 4 and 5 are Riley's siblings: the household a guarantor pays for. Sam (4) owes
// $20.00 + $15.00 (the screening line is confidential); Morgan (5) is an adult and owes $35.00.
const PATIENT_4 = { month: '02', day: '09', year: '2015', zip: '60622', name: 'Sam', balance: '$35.00' };
const PATIENT_5 = { month: '05', day: '30', year: '2006', zip: '60622', name: 'Morgan', balance: '$35.00' };
const GUARANTOR = { email: 'guardian.e2e@example.test', password: 'correct horse battery staple' };
// Patient 6 prefers Spanish; she owes $45.00 + $8.00.
const PATIENT_6 = { month: '07', day: '19', year: '1978', zip: '60608', balance: '$53.00' };
const ES = catalog('es');
const EN = catalog('en');
const CARD_OK = '4242 4242 4242 4242';
const CARD_DECLINED = '4000 0000 0000 0002';

/** Server state shared by the tests (set in `before`). */
const server = {
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
let browser;

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

/** A fresh pay link for demo patient `n`, from `patriotpay demo-link` against the same data. */
async function demoLink(n) {
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
async function demoInvite(n) {
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
async function inBrowser(name, fn) {
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

// ---- small page helpers -------------------------------------------------------------------

function path(page) {
  return new URL(page.url()).pathname;
}

/** Waits until the page is at `expectedPath` on the portal's origin. */
async function atPortal(page, expectedPath) {
  await page.waitForURL((u) => u.origin === server.portalUrl && u.pathname === expectedPath);
  assert.equal(path(page), expectedPath);
  // Every page the journeys reach is checked for WCAG 2.1 AA violations (once per kind).
  await checkA11y(page);
}

/** Waits until the locator is visible (fails with the locator in the message otherwise). */
async function visible(locator) {
  await locator.waitFor({ state: 'visible' });
}

async function heading(page, name) {
  await visible(page.getByRole('heading', { level: 1, name, exact: true }));
}

async function verifyDob(page, { month, day, year }) {
  await page.getByLabel('Month', { exact: true }).fill(month);
  await page.getByLabel('Day', { exact: true }).fill(day);
  await page.getByLabel('Year', { exact: true }).fill(year);
  await page.getByRole('button', { name: 'Continue', exact: true }).click();
}

/** Opens a pay link: it must land on /verify with the token gone from the address bar. */
async function openLink(page, link) {
  await page.goto(link);
  await atPortal(page, '/verify');
  const token = new URL(link).pathname.split('/').at(-1);
  assert.ok(!page.url().includes(token), `the token is still in the URL: ${page.url()}`);
  await heading(page, 'Confirm who you are');
}

async function payAmount(page, amount) {
  const field = page.getByLabel('Amount to pay (USD)', { exact: true });
  await field.fill(amount);
  await page.getByRole('button', { name: 'Pay', exact: true }).click();
}

/** On the sandbox's hosted card page: enters a card and pays. */
async function payOnSandbox(page, { number, exp, cvc }) {
  await page.waitForURL((u) => u.origin === server.sandboxUrl && u.pathname.startsWith('/checkout/cs_test_'));
  assert.ok(page.url().startsWith(server.sandboxUrl + '/checkout/cs_test_'), page.url());
  await checkA11y(page);
  await page.getByLabel('Card number', { exact: true }).fill(number);
  await page.getByLabel('Expiry (MM / YY)', { exact: true }).fill(exp);
  await page.getByLabel('CVC', { exact: true }).fill(cvc);
  await page.getByRole('button', { name: 'Pay', exact: true }).click();
  await page.waitForURL((u) => u.origin === server.portalUrl);
}

/** The receipt's value for a term of its description list (e.g. "Amount paid"). */
function receiptValue(page, term) {
  return page.locator(`dl dt:text-is("${term}") + dd`);
}

/** Waits for the receipt; the portal may first show "Confirming your payment" (meta refresh). */
async function receipt(page) {
  await page.getByRole('heading', { level: 1, name: 'Payment received', exact: true }).waitFor({ timeout: 30_000 });
  await checkA11y(page);
  return {
    amount: (await receiptValue(page, 'Amount paid').innerText()).trim(),
    card: (await receiptValue(page, 'Card').innerText()).trim(),
    remaining: (await receiptValue(page, 'Remaining balance').innerText()).trim(),
  };
}

/** The accessible description of an element: the text of its aria-describedby targets. */
async function accessibleDescription(page, locator) {
  const ids = ((await locator.getAttribute('aria-describedby')) ?? '').split(/\s+/).filter(Boolean);
  const parts = [];
  for (const id of ids) parts.push((await page.locator(`[id="${id}"]`).textContent()).replace(/\s+/g, ' ').trim());
  return parts.join(' ');
}

// ---- the journeys -------------------------------------------------------------------------

describe('PatriotPay patient journey (Chromium, JavaScript disabled)', { concurrency: false }, () => {
  before(async () => {
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
  }, { timeout: 90_000 });

  after(async () => {
    await stopA11y();
    await browser?.close();
    await stopServer();
    if (server.dataDir) await rm(server.dataDir, { recursive: true, force: true });
  });

  it('patient pays the full balance with a test card', { timeout: TEST_TIMEOUT_MS }, async () => {
    await inBrowser('full payment', async (page) => {
      await openLink(page, server.firstLink);
      await heading(page, 'Confirm who you are');
      // Neutral until the date of birth is accepted: no practice named.
      assert.equal(await page.getByText('Riverside Family Medicine').count(), 0);

      await verifyDob(page, PATIENT_1);
      await atPortal(page, '/summary');
      await visible(page.getByText('Balance due', { exact: true }));
      await visible(page.getByText('$112.00', { exact: true }));

      await page.getByRole('link', { name: 'View the itemised statement', exact: true }).click();
      await atPortal(page, '/verify/zip');
      await page.getByLabel('ZIP code', { exact: true }).fill(PATIENT_1.zip);
      await page.getByRole('button', { name: 'Show itemised statement', exact: true }).click();
      await atPortal(page, '/statement');

      const table = page.getByRole('table');
      for (const service of ['Office visit, established patient', 'Comprehensive metabolic panel', 'Follow-up visit']) {
        await visible(table.getByRole('rowheader', { name: service, exact: true }));
      }
      const totals = table.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'Totals', exact: true }) });
      await visible(totals);
      assert.match(await totals.innerText(), /\$112\.00/);

      const amount = page.getByLabel('Amount to pay (USD)', { exact: true });
      assert.equal(await amount.inputValue(), '112.00');
      await page.getByRole('button', { name: 'Pay', exact: true }).click();

      await payOnSandbox(page, { number: CARD_OK, exp: '12 / 34', cvc: '123' });
      const r = await receipt(page);
      assert.equal(r.amount, '$112.00');
      assert.equal(r.card, 'Visa ending 4242');
      assert.equal(r.remaining, '$0.00');

      await page.goto(server.portalUrl + '/summary');
      await atPortal(page, '/summary');
      await visible(page.getByText('This statement is paid in full'));
      assert.equal(await page.getByLabel('Amount to pay (USD)', { exact: true }).count(), 0, 'a paid statement offers no pay form');
    });
  });

  it('declined card returns to a page that says so, then a partial payment succeeds', { timeout: TEST_TIMEOUT_MS }, async () => {
    const link = await demoLink(3);
    await inBrowser('declined then partial', async (page) => {
      await openLink(page, link);
      await verifyDob(page, PATIENT_3);
      await atPortal(page, '/summary');
      await visible(page.getByText('Balance due', { exact: true }));
      await visible(page.getByText(PATIENT_3.balance, { exact: true }));

      await payAmount(page, '10.00');
      await payOnSandbox(page, { number: CARD_DECLINED, exp: '12/34', cvc: '123' });
      await heading(page, 'Your card was declined');
      await visible(page.getByText('No money was taken', { exact: false }).first());

      // The pay form is right there again.
      await payAmount(page, '10.00');
      await payOnSandbox(page, { number: CARD_OK, exp: '12/34', cvc: '123' });
      const r = await receipt(page);
      assert.equal(r.amount, '$10.00');
      assert.equal(r.card, 'Visa ending 4242');
      assert.equal(r.remaining, dollars(cents(PATIENT_3.balance) - 1000));
    });
  });

  it('wrong answers lock the link', { timeout: TEST_TIMEOUT_MS }, async () => {
    const link = await demoLink(2);
    await inBrowser('lockout', async (page) => {
      await openLink(page, link);
      const wrong = { month: '01', day: '01', year: '1970' };
      for (let attempt = 1; attempt <= 4; attempt++) {
        await verifyDob(page, wrong);
        await atPortal(page, '/verify');
        await visible(page.getByText("We couldn't confirm those details", { exact: false }).first());
        await heading(page, 'Confirm who you are');
      }
      await verifyDob(page, wrong);
      await heading(page, 'This link is locked');
      assert.ok(!page.url().includes(new URL(link).pathname), `the token is in the URL: ${page.url()}`);
      await visible(page.getByText(/call \(555\) 010-4400/).first());
      assert.equal(await page.getByText('Riverside Family Medicine').count(), 0, 'the locked page names no practice');
      assert.equal(await page.getByLabel('Month', { exact: true }).count(), 0, 'a locked link offers no form');
    });
  });

  it('amount over the balance is refused with the error tied to the field', { timeout: TEST_TIMEOUT_MS }, async () => {
    const link = await demoLink(3);
    await inBrowser('amount over balance', async (page) => {
      await openLink(page, link);
      await verifyDob(page, PATIENT_3);
      await atPortal(page, '/summary');
      const balance = dollars(cents(PATIENT_3.balance) - 1000); // test 2 paid $10.00
      await visible(page.getByText(balance, { exact: true }));

      await payAmount(page, '999');
      await atPortal(page, '/summary');
      await visible(page.getByRole('alert').filter({ hasText: 'There is a problem' }));

      const amount = page.getByLabel('Amount to pay (USD)', { exact: true });
      assert.equal(await amount.getAttribute('aria-invalid'), 'true');
      const description = await accessibleDescription(page, amount);
      assert.match(description, /can't be more than the balance/);
      assert.ok(description.includes(balance), `the error names the balance ${balance}: ${description}`);
      // The error summary links to the field.
      await visible(page.getByRole('alert').getByRole('link', { name: /can't be more than the balance/ }));
    });
  });

  it('a bank payment (ACH) shows as processing, and the balance counts it', { timeout: TEST_TIMEOUT_MS }, async () => {
    const link = await demoLink(2);
    await inBrowser('bank payment', async (page) => {
      await openLink(page, link);
      await verifyDob(page, PATIENT_2);
      await atPortal(page, '/summary');
      const before = cents('$' + (await page.getByLabel('Amount to pay (USD)', { exact: true }).inputValue()));
      await payAmount(page, '5.00');
      await page.waitForURL((u) => u.origin === server.sandboxUrl && u.pathname.startsWith('/checkout/cs_test_'));
      // The processor's page names who is paid: the practice.
      await visible(page.getByRole('heading', { level: 1, name: /Riverside Family Medicine/ }));
      // The demo practice takes bank debits: the hosted page offers a bank account too.
      await visible(page.getByRole('heading', { level: 2, name: 'Pay from a US bank account', exact: true }));
      await page.getByLabel('Routing number', { exact: true }).fill('110000000');
      await page.getByLabel('Account number', { exact: true }).fill('000123456789');
      await page.getByRole('button', { name: 'Pay from bank account', exact: true }).click();
      await page.waitForURL((u) => u.origin === server.portalUrl);
      await page.getByRole('heading', { level: 1, name: 'Payment received', exact: true }).waitFor({ timeout: 30_000 });
      await visible(page.getByRole('status').filter({ hasText: 'Processing — bank payments take a few business days' }));
      assert.equal((await receiptValue(page, 'Amount paid').innerText()).trim(), '$5.00');
      assert.equal((await receiptValue(page, 'Remaining balance').innerText()).trim(), dollars(before - 500));
    });
  });

  it('guarantor signs in, sees two dependants, pays both in one payment', { timeout: TEST_TIMEOUT_MS }, async () => {
    const forSam = await demoInvite(4);
    const forMorgan = await demoInvite(5);
    await inBrowser('guarantor household', async (page) => {
      // First invitation: answer Sam's questions and create the account.
      await answerInvitation(page, forSam, PATIENT_4);
      await page.getByLabel('Email address', { exact: true }).fill(GUARANTOR.email);
      await page.getByLabel('Password', { exact: true }).fill(GUARANTOR.password);
      await page.getByLabel('Confirm password', { exact: true }).fill(GUARANTOR.password);
      await page.getByRole('button', { name: 'Create account', exact: true }).click();
      // The address is confirmed by the code emailed to it (the demo's outbox viewer shows it).
      await atPortal(page, '/account/confirm');
      await heading(page, 'Check your email');
      await page.getByLabel('Code from the email', { exact: true }).fill(await emailedCode(GUARANTOR.email));
      await page.getByRole('button', { name: 'Confirm', exact: true }).click();
      await atPortal(page, '/signin');
      await signIn(page, GUARANTOR);
      await atPortal(page, '/account');
      await heading(page, 'Your account');

      // Second invitation, opened while signed in: the portal asks before touching the session;
      // continue with this account, answer Morgan's questions, accept.
      await answerInvitation(page, forMorgan, PATIENT_5, { signedIn: true });
      await page.getByRole('button', { name: 'Add to my account', exact: true }).click();
      await atPortal(page, '/account');

      // Sign out, then sign in as a returning guarantor would.
      await page.getByRole('button', { name: 'Sign out', exact: true }).click();
      await page.goto(`${server.portalUrl}/signin`);
      await signIn(page, GUARANTOR);
      await atPortal(page, '/account');
      await heading(page, 'Your account');
      for (const p of [PATIENT_4, PATIENT_5]) {
        const group = page.getByRole('region', { name: `${p.name}'s statements`, exact: true });
        await visible(group);
        await visible(group.getByText(`Balance due ${p.balance}`, { exact: false }));
      }
      await visible(page.getByText('$70.00', { exact: true }).first());

      // Morgan is an adult: amounts, but no service descriptions.
      await page.getByRole('link', { name: /^View Morgan's statement/ }).click();
      await heading(page, "Statement for Morgan");
      await visible(page.getByText('Details hidden for privacy', { exact: true }).first());
      assert.equal(await page.getByText('Urgent care visit').count(), 0, 'an adult dependant\'s description is hidden');
      await page.getByRole('link', { name: 'Back to your account', exact: true }).click();
      await atPortal(page, '/account');

      // Both statements, one payment.
      await page.getByLabel(/^Pay Sam's statement/).check();
      await page.getByLabel(/^Pay Morgan's statement/).check();
      await page.getByRole('button', { name: 'Pay selected', exact: true }).click();
      await page.waitForURL((u) => u.origin === server.sandboxUrl);
      await visible(page.getByText('$70.00', { exact: true }).first());
      await payOnSandbox(page, { number: CARD_OK, exp: '12/34', cvc: '123' });
      await page.getByRole('heading', { level: 1, name: 'Payment received', exact: true }).waitFor({ timeout: 30_000 });
      assert.equal((await receiptValue(page, 'Amount paid').innerText()).trim(), '$70.00');
      const rows = page.locator('table tbody tr');
      assert.equal(await rows.count(), 2, 'the receipt lists both statements');
      for (const p of [PATIENT_4, PATIENT_5]) {
        const row = rows.filter({ hasText: p.name });
        await visible(row.getByText(p.balance, { exact: true }));
        await visible(row.getByText('$0.00', { exact: true }));
      }

      await page.getByRole('link', { name: 'Back to your account', exact: true }).click();
      await atPortal(page, '/account');
      await visible(page.getByText('Nothing is due.', { exact: true }).first());
    });
  });

  it('a member saves a card, sees it, and removes it', { timeout: TEST_TIMEOUT_MS }, async () => {
    await inBrowser('saved cards', async (page) => {
      // The guarantor's account from the household test.
      await page.goto(`${server.portalUrl}/signin`);
      await signIn(page, GUARANTOR);
      await atPortal(page, '/account');
      await page.getByRole('link', { name: 'Saved cards', exact: true }).click();
      await heading(page, 'Saved cards');
      await visible(page.getByText('You have no saved cards.', { exact: true }));
      await page.getByRole('button', { name: 'Save a card', exact: true }).click();
      await page.waitForURL((u) => u.origin === server.sandboxUrl && u.pathname.startsWith('/checkout/cs_test_'));
      await visible(page.getByText('Your card is saved for later payments. Nothing is charged now.', { exact: true }));
      await page.getByLabel('Card number', { exact: true }).fill(CARD_OK);
      await page.getByLabel('Expiry (MM / YY)', { exact: true }).fill('12 / 34');
      await page.getByLabel('CVC', { exact: true }).fill('123');
      await page.getByRole('button', { name: 'Save card', exact: true }).click();
      await page.waitForURL((u) => u.origin === server.portalUrl);
      await visible(page.getByText('Your card was saved.', { exact: true }));
      await visible(page.getByText('Visa ending 4242, expires 12/2034', { exact: true }));
      await page.getByRole('button', { name: 'Remove Visa ending 4242', exact: true }).click();
      await visible(page.getByText('The card was removed.', { exact: true }));
      await visible(page.getByText('You have no saved cards.', { exact: true }));
    });
  });

  it('a guarantor sets up a payment plan and its first instalment is paid', { timeout: TEST_TIMEOUT_MS }, async () => {
    // Riley's $140.00 (test 2 paid $10.00) in two monthly instalments on a saved card: the
    // first, $70.00, is charged when the plan is set up; the schedule shows the second.
    const forRiley = await demoInvite(3);
    await inBrowser('payment plan', async (page) => {
      await page.goto(`${server.portalUrl}/signin`);
      await signIn(page, GUARANTOR);
      await atPortal(page, '/account');
      await answerInvitation(page, forRiley, { ...PATIENT_3, name: 'Riley' }, { signedIn: true });
      await page.getByRole('button', { name: 'Add to my account', exact: true }).click();
      await atPortal(page, '/account');
      await page.getByRole('link', { name: 'Saved cards', exact: true }).click();
      await page.getByRole('button', { name: 'Save a card', exact: true }).click();
      await page.waitForURL((u) => u.origin === server.sandboxUrl);
      await page.getByLabel('Card number', { exact: true }).fill(CARD_OK);
      await page.getByLabel('Expiry (MM / YY)', { exact: true }).fill('12 / 34');
      await page.getByLabel('CVC', { exact: true }).fill('123');
      await page.getByRole('button', { name: 'Save card', exact: true }).click();
      await page.waitForURL((u) => u.origin === server.portalUrl);
      await page.getByRole('link', { name: 'Back to your account', exact: true }).click();
      await page.getByRole('link', { name: 'Payment plans', exact: true }).click();
      await heading(page, 'Payment plans');
      await page.getByLabel(/^Riley at .*: \$140\.00$/).check();
      await page.getByLabel('Number of instalments (the first is charged today)', { exact: true }).selectOption('2');
      await page.getByLabel('How often', { exact: true }).selectOption('month');
      await page.getByLabel('Card to charge', { exact: true }).selectOption({ label: 'Visa ending 4242' });
      await page.getByLabel('Most we may charge at once, in dollars', { exact: true }).fill('70.00');
      await page.getByLabel(/^I agree to the first instalment being charged today/).check();
      await page.getByRole('button', { name: 'Set up the plan', exact: true }).click();
      await atPortal(page, '/account/plans');
      await visible(page.getByText('Your payment plan is set up and the first instalment was paid.', { exact: true }));
      const rows = page.locator('table.plan-schedule tbody tr');
      assert.equal(await rows.count(), 2, 'two instalments');
      await visible(rows.nth(0).getByText('Paid', { exact: true }));
      await visible(rows.nth(1).getByText('Scheduled', { exact: true }));
      for (const i of [0, 1]) await visible(rows.nth(i).getByText('$70.00', { exact: true }));
      await page.getByRole('link', { name: 'Back to your account', exact: true }).click();
      await atPortal(page, '/account');
      const riley = page.getByRole('region', { name: "Riley's statements", exact: true });
      await visible(riley.getByText('Balance due $70.00', { exact: false }));
    });
  });

  it('an admin refunds a payment', { timeout: TEST_TIMEOUT_MS }, async () => {
    // Patient 1 paid $112.00 in the first journey. A practice admin is added as an operator
    // would (`users add`), enrols (password and TOTP), signs in with a recovery code and
    // refunds part of that payment from the patient's payments page.
    const admin = await addStaff('admin.e2e@example.test', 'practice-admin');
    await inBrowser('admin refunds', async (page) => {
      await enrolAndSignIn(page, admin);
      await page.getByLabel('Last name', { exact: true }).fill('Quintero');
      await page.getByLabel('Date of birth (YYYY-MM-DD)', { exact: true }).fill('1984-03-14');
      await page.getByRole('button', { name: 'Search', exact: true }).click();
      await page.getByRole('link', { name: 'Payments and refunds for Avery Quintero', exact: true }).click();
      await heading(page, 'Payments and refunds');
      assert.match(path(page), /^\/staff\/patients\/pat_[0-9a-f]{32}\/payments$/);
      const amount = page.getByLabel('Amount to refund (dollars)', { exact: true });
      assert.equal(await amount.inputValue(), '112.00', 'the amount defaults to what is left');
      await amount.fill('12.00');
      await page.getByLabel('Reason', { exact: true }).selectOption('billing_error');
      await page.getByRole('button', { name: /^Refund this amount of the .* payment of \$112\.00 to the payer now$/ }).click();
      await page.waitForURL((u) => u.searchParams.has('refunded'));
      await visible(page.getByText('Refund of $12.00 issued.', { exact: true }));
      assert.equal((await page.locator('dd.payment-left').innerText()).trim(), '$100.00');
      await visible(page.getByText(/\$12\.00, billing error \(refunded\)/));
      // More than is left is refused with the reason, and the amount typed is kept.
      await amount.fill('100.01');
      await page.getByRole('button', { name: /^Refund this amount of the .* payment of \$112\.00 to the payer now$/ }).click();
      await visible(page.getByText('That is more than is left of this payment: at most $100.00 can be refunded.'));
      assert.equal(await page.getByLabel('Amount to refund (dollars)', { exact: true }).inputValue(), '100.01');
    });
  });

  it('a support agent views as a patient, is refused a payment, and the patient sees the view', { timeout: TEST_TIMEOUT_MS }, async () => {
    // Patient 3 still owes money (test 2 paid $10.00 of it) and has no account: the view shows
    // the statement of their newest pay link.
    const agent = await addStaff('agent.e2e@example.test', 'support-agent', 'Ana Diaz');
    await inBrowser('agent views as patient', async (page) => {
      await enrolAndSignIn(page, agent);
      await page.getByLabel('Last name', { exact: true }).fill('Okonkwo-Hart');
      await page.getByLabel('Date of birth (YYYY-MM-DD)', { exact: true }).fill('2012-06-21');
      await page.getByRole('button', { name: 'Search', exact: true }).click();
      await page.getByRole('link', { name: 'Statements, payments and pay links of Riley Okonkwo-Hart', exact: true }).click();
      await page.getByLabel('Reason for viewing', { exact: true }).fill('Parent called about the balance');
      await page.getByLabel('Ticket reference', { exact: true }).fill('SUP-2001');
      await page.getByRole('button', { name: 'View as this patient', exact: true }).click();
      await atPortal(page, '/summary');
      const banner = page.getByRole('status').filter({ hasText: 'you are viewing as' });
      await visible(banner);
      assert.match(await banner.innerText(), /Ana Diaz, you are viewing as Riley Okonkwo-Hart\. \d+ min left\./);
      await visible(page.getByText('Read-only: nothing can be changed, paid or sent from here.'));
      // A payment is refused, and says why; the banner stays.
      await page.getByRole('button', { name: 'Pay', exact: true }).click();
      await atPortal(page, '/pay');
      await heading(page, 'Not allowed while viewing as a patient');
      await visible(page.getByText('Viewing as a patient is read-only. Nothing was changed.'));
      await page.getByRole('button', { name: 'End view', exact: true }).click();
      await page.waitForURL((u) => u.origin === server.portalUrl && u.pathname.startsWith('/staff'));
      await visible(page.getByText('The view as the patient has ended.'));
    });
    // The patient opens their link, answers both questions and reads who viewed their record.
    const link = await demoLink(3);
    await inBrowser('patient sees the view', async (page) => {
      await openLink(page, link);
      await verifyDob(page, PATIENT_3);
      await atPortal(page, '/summary');
      await page.goto(server.portalUrl + '/statement');
      await atPortal(page, '/verify/zip');
      await page.getByLabel('ZIP code', { exact: true }).fill(PATIENT_3.zip);
      await page.getByRole('button', { name: 'Show itemised statement', exact: true }).click();
      await atPortal(page, '/statement');
      await page.goto(server.portalUrl + '/summary');
      await page.getByRole('link', { name: 'Who viewed my record', exact: true }).click();
      await atPortal(page, '/record-views');
      await visible(page.getByText(/^Ana Diaz of Riverside Family Medicine viewed your pages as you see them, to help you on /).first());
      await visible(page.getByText(/ticket SUP-2001/).first());
      assert.equal(await page.getByText('Parent called about the balance').count(), 0, 'the reason is for the signed-in patient only');
    });
  });

  it('a practice admin imports the sample statements and a patient pays from the text', { timeout: TEST_TIMEOUT_MS }, async () => {
    // The admin uploads samples/statements.csv (the dry run first, then "Confirm import"). Each
    // new statement's pay link is texted; in the demo, texts stay in the outbox, which its viewer
    // shows on this machine. Jordan Whitlock (+1 312 555 0103; the demo has a Jordan Whitlock
    // too) reads the text for the imported statement S-2026-0003 ($20.00), follows it and pays.
    const sample = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'samples', 'statements.csv');
    const admin = await addStaff('importer.e2e@example.test', 'practice-admin', 'Lee Park');
    let link;
    await inBrowser('admin imports statements', async (page) => {
      await enrolAndSignIn(page, admin);
      await page.getByRole('link', { name: 'Import statements', exact: true }).click();
      await atPortal(page, '/staff/import');
      await heading(page, 'Import statements');
      await page.getByLabel('Statement file', { exact: true }).setInputFiles(sample);
      await page.getByRole('button', { name: 'Check the file', exact: true }).click();
      await page.waitForURL((u) => u.pathname === '/staff/import' && u.searchParams.has('practice'));
      await heading(page, 'Import statements');
      await visible(page.getByRole('heading', { name: 'Checked: nothing has been imported yet', exact: true }));
      await visible(page.getByText('4 to create, 0 to update, 0 unchanged, 0 rejected.', { exact: true }));
      await page.getByRole('button', { name: 'Confirm import', exact: true }).click();
      await page.waitForURL((u) => u.pathname === '/staff/import' && u.searchParams.has('practice'));
      await visible(page.getByRole('heading', { name: 'Import finished', exact: true }));
      await visible(page.getByText('4 created, 0 updated, 0 unchanged, 0 rejected.', { exact: true }));
      // The history names the admin for both runs, the dry run and the import.
      const runs = page.locator('table.import-history tbody tr');
      assert.equal(await runs.count(), 2);
      for (const kind of ['Dry run', 'Import']) {
        await visible(runs.filter({ hasText: 'Lee Park' }).filter({ has: page.getByRole('cell', { name: kind, exact: true }) }));
      }
    });
    await inBrowser('patient reads the text in the demo outbox', async (page) => {
      await page.goto(server.portalUrl + '/dev/outbox');
      await heading(page, 'Outbox (demo)');
      const text = page.locator('li.dev-message').filter({ has: page.locator('.dev-to', { hasText: '+13125550103' }) });
      assert.equal(await text.count(), 1, 'one text to the number');
      await visible(text.getByText(/^Riverside Family Medicine: Your statement is ready\. View and pay securely at /));
      await visible(text.getByText(/Reply STOP to opt out, HELP for help\./));
      link = await text.getByRole('link', { name: 'Open the link in this message', exact: true }).getAttribute('href');
      assert.match(link, /\/p\/\S+$/);
    });
    await inBrowser('patient from the import pays', async (page) => {
      await openLink(page, link);
      await verifyDob(page, { month: '11', day: '02', year: '1991' });
      await atPortal(page, '/summary');
      await visible(page.getByText('$20.00', { exact: true }));
      await payAmount(page, '20.00');
      await payOnSandbox(page, { number: CARD_OK, exp: '12 / 34', cvc: '123' });
      const r = await receipt(page);
      assert.equal(r.amount, '$20.00');
      assert.equal(r.card, 'Visa ending 4242');
      assert.equal(r.remaining, '$0.00');
    });
  });

  it('a patient who prefers Spanish reads her statement on a phone, pays, switching language mid-way, and downloads the PDF receipt', { timeout: TEST_TIMEOUT_MS }, async () => {
    await inBrowser('spanish on a phone', async (page) => {
      await page.setViewportSize({ width: 390, height: 844 });
      await page.goto(await demoLink(6));
      await atPortal(page, '/verify');
      assert.equal(await page.locator('html').getAttribute('lang'), 'es');
      await heading(page, ES['verify-title']);
      // A wrong date first: the error state, in Spanish (and checked by axe).
      await page.getByLabel(ES['verify-month'], { exact: true }).fill('02');
      await page.getByLabel(ES['verify-day'], { exact: true }).fill('31');
      await page.getByLabel(ES['verify-year'], { exact: true }).fill('1978');
      await page.getByRole('button', { name: ES['verify-continue'], exact: true }).click();
      await atPortal(page, '/verify');
      await visible(page.locator('.error-summary'));
      await page.getByLabel(ES['verify-month'], { exact: true }).fill(PATIENT_6.month);
      await page.getByLabel(ES['verify-day'], { exact: true }).fill(PATIENT_6.day);
      await page.getByLabel(ES['verify-year'], { exact: true }).fill(PATIENT_6.year);
      await page.getByRole('button', { name: ES['verify-continue'], exact: true }).click();
      await atPortal(page, '/summary');
      await heading(page, ES['summary-title']);
      await page.getByRole('link', { name: ES['summary-itemised-link'], exact: true }).click();
      await atPortal(page, '/verify/zip');
      await page.getByLabel(ES['zip-label'], { exact: true }).fill(PATIENT_6.zip);
      await page.getByRole('button', { name: ES['zip-continue'], exact: true }).click();
      await atPortal(page, '/statement');
      await heading(page, ES['statement-title']);

      // On a 390 px screen nothing scrolls sideways, every amount is on the screen, and the
      // balance and the pay button show without scrolling.
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 390, `the statement is ${width} px wide on a 390 px screen`);
      const amounts = page.locator('table.statement td.num');
      assert.equal(await amounts.count(), 12, 'two services and the totals, four amounts each');
      for (let i = 0; i < 12; i += 1) {
        const box = await amounts.nth(i).boundingBox();
        assert.ok(box && box.x >= 0 && box.x + box.width <= 390, `amount ${i} is off the screen: ${JSON.stringify(box)}`);
      }
      for (const key of ['statement-col-insurance', 'statement-col-adjustment', 'statement-col-responsibility']) {
        await visible(page.getByText(ES[`${key}-hint`]).first());
      }
      const balance = await page.locator('.balance-amount').boundingBox();
      const pay = await page.getByRole('button', { name: ES['pay-button'], exact: true }).boundingBox();
      assert.ok(balance.y + balance.height <= 844 && pay.y + pay.height <= 844, `balance ${JSON.stringify(balance)} or pay ${JSON.stringify(pay)} below the fold`);

      // The switch, mid-journey: the same page in English, then back.
      await page.getByRole('link', { name: 'English', exact: true }).click();
      await atPortal(page, '/statement');
      assert.equal(await page.locator('html').getAttribute('lang'), 'en');
      await heading(page, EN['statement-title']);
      await page.getByRole('link', { name: 'Español', exact: true }).click();
      await atPortal(page, '/statement');
      await heading(page, ES['statement-title']);

      // More than the balance: refused, the error in Spanish and tied to the field.
      await page.getByLabel(ES['pay-amount-label'], { exact: true }).fill('999.00');
      await page.getByRole('button', { name: ES['pay-button'], exact: true }).click();
      await atPortal(page, '/statement');
      await visible(page.locator('.error-summary'));
      await page.getByLabel(ES['pay-amount-label'], { exact: true }).fill('53.00');
      await page.getByRole('button', { name: ES['pay-button'], exact: true }).click();
      await payOnSandbox(page, { number: CARD_OK, exp: '12 / 34', cvc: '123' });
      await page.getByRole('heading', { level: 1, name: ES['receipt-title'], exact: true }).waitFor({ timeout: 30_000 });
      await checkA11y(page);
      assert.equal((await page.locator(`dl dt:text-is("${ES['receipt-amount']}") + dd`).innerText()).trim(), '$53.00');

      // The receipt as a PDF: a download named without PHI, its text in Spanish.
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('link', { name: ES['pdf-receipt-link'], exact: true }).click(),
      ]);
      assert.equal(download.suggestedFilename(), 'receipt.pdf');
      const file = join(RESULTS_DIR, 'receipt-es.pdf');
      await mkdir(RESULTS_DIR, { recursive: true });
      await download.saveAs(file);
      const { stdout: pdfText } = await execFileP('pdftotext', ['-layout', file, '-']);
      for (const want of [ES['receipt-title'], ES['receipt-amount'], '$53.00', 'Visa']) {
        assert.ok(pdfText.includes(want), `${want} not in the PDF's text:\n${pdfText}`);
      }
    });
  });

  it('staff and a guarantor use the portal in Spanish', { timeout: TEST_TIMEOUT_MS }, async () => {
    const admin = await addStaff('spanish.admin.e2e@example.test', 'practice-admin', 'Rosa Vega');
    await inBrowser('staff in spanish', async (page) => {
      await enrolAndSignIn(page, admin);
      await page.getByRole('link', { name: 'Español', exact: true }).click();
      await atPortal(page, '/staff');
      await heading(page, ES['staff-home-title']);
      for (const p of ['/staff/import', '/staff/api-keys', '/staff/messaging', '/staff/messages']) {
        await page.goto(server.portalUrl + p);
        await atPortal(page, p);
        assert.equal(await page.locator('html').getAttribute('lang'), 'es', p);
      }
    });
    await inBrowser('guarantor in spanish', async (page) => {
      await page.goto(server.portalUrl + '/signin');
      await atPortal(page, '/signin');
      await signIn(page, GUARANTOR);
      await atPortal(page, '/account');
      await page.getByRole('link', { name: 'Español', exact: true }).click();
      await atPortal(page, '/account');
      await heading(page, ES['account-title']);
      // The charges of each statement as a picture, with the amounts in words beside it.
      await visible(page.locator('figure.charge-split').first());
      for (const p of ['/account/cards', '/account/plans']) {
        await page.goto(server.portalUrl + p);
        await atPortal(page, p);
        assert.equal(await page.locator('html').getAttribute('lang'), 'es', p);
      }
    });
  });

  it('the public pages in both languages', { timeout: TEST_TIMEOUT_MS }, async () => {
    await inBrowser('public pages', async (page) => {
      for (const lang of ['en', 'es']) {
        await page.goto(`${server.portalUrl}/?lang=${lang}`);
        await atPortal(page, '/');
        for (const p of ['/accessibility', '/check-link', '/signin', '/account/forgot', '/staff/login']) {
          await page.goto(server.portalUrl + p);
          await atPortal(page, p);
          assert.equal(await page.locator('html').getAttribute('lang'), lang, p);
        }
        // The accessibility statement is linked from every page's footer.
        await page.getByRole('link', { name: (lang === 'en' ? EN : ES)['footer-accessibility'], exact: true }).click();
        await atPortal(page, '/accessibility');
      }
    });
  });

  it('keyboard only: a patient verifies and pays without a mouse, the focus always visible', { timeout: TEST_TIMEOUT_MS }, async () => {
    // JavaScript is on here only so the test can read the focused element; the pages have none.
    const context = await browser.newContext({ javaScriptEnabled: true });
    context.setDefaultTimeout(STEP_TIMEOUT_MS);
    const page = await context.newPage();
    try {
      /** Tabs until the focus is on `selector`, checking each stop shows its focus. */
      const tabTo = async (selector) => {
        for (let i = 0; i < 40; i += 1) {
          await page.keyboard.press('Tab');
          const focus = await page.evaluate((sel) => {
            const el = document.activeElement;
            const style = getComputedStyle(el);
            return { at: el.matches(sel), outline: style.outlineStyle, width: parseFloat(style.outlineWidth), tag: el.tagName };
          }, selector);
          assert.ok(focus.outline !== 'none' && focus.width >= 2, `no visible focus on a ${focus.tag}`);
          if (focus.at) return;
        }
        assert.fail(`Tab never reached ${selector}`);
      };
      await page.goto(await demoLink(2));
      await page.waitForURL((u) => u.pathname === '/verify');
      await tabTo('#dob-month');
      await page.keyboard.type(PATIENT_2.month);
      await tabTo('#dob-day');
      await page.keyboard.type(PATIENT_2.day);
      await tabTo('#dob-year');
      await page.keyboard.type(PATIENT_2.year);
      await page.keyboard.press('Enter');
      await page.waitForURL((u) => u.pathname === '/summary');
      await tabTo('#amount');
      await page.keyboard.press('Control+A');
      await page.keyboard.type('5.00');
      await page.keyboard.press('Enter');
      await page.waitForURL((u) => u.origin === server.sandboxUrl);
      await tabTo('#card-number');
      await page.keyboard.type(CARD_OK);
      await tabTo('#exp');
      await page.keyboard.type('12 / 34');
      await tabTo('#cvc');
      await page.keyboard.type('123');
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { level: 1, name: 'Payment received', exact: true }).waitFor({ timeout: 30_000 });
    } finally {
      await context.close();
    }
  });

  it('pages reflow at 320 px and at 200% zoom, and nothing moves for reduced motion', { timeout: TEST_TIMEOUT_MS }, async () => {
    // 200% zoom of a 1280 px window is a 640 px layout viewport; 320 px is WCAG's reflow width.
    for (const width of [320, 640]) {
      const context = await browser.newContext({ javaScriptEnabled: true, viewport: { width, height: 800 }, reducedMotion: 'reduce' });
      const page = await context.newPage();
      try {
        await page.goto(await demoLink(1));
        await page.waitForURL((u) => u.pathname === '/verify');
        await verifyDob(page, PATIENT_1);
        await page.waitForURL((u) => u.pathname === '/summary');
        await page.getByRole('link', { name: 'View the itemised statement', exact: true }).click();
        await page.getByLabel('ZIP code', { exact: true }).fill(PATIENT_1.zip);
        await page.getByRole('button', { name: 'Show itemised statement', exact: true }).click();
        await page.waitForURL((u) => u.pathname === '/statement');
        for (const p of ['/summary', '/statement', '/record-views']) {
          await page.goto(server.portalUrl + p);
          const wide = await page.evaluate(() => document.documentElement.scrollWidth);
          assert.ok(wide <= width, `${p} is ${wide} px wide in a ${width} px window`);
          const moving = await page.evaluate(() => document.getAnimations().length);
          assert.equal(moving, 0, `${p} animates with reduced motion`);
        }
      } finally {
        await context.close();
      }
    }
  });

  it('axe checked the pages of every flow in both languages, and it does find failures', async () => {
    const en = checkedPages.filter((p) => p.lang === 'en').length;
    const es = checkedPages.filter((p) => p.lang === 'es').length;
    console.log(`[e2e] axe: ${checkedPages.length} distinct pages checked, ${en} in English, ${es} in Spanish, no WCAG 2.1 AA violations:`);
    for (const p of checkedPages) console.log(`[e2e]   ${p.key}`);
    assert.ok(en >= 25 && es >= 20, `too few pages checked: ${en} English, ${es} Spanish`);
    // The check can fail: a page with no language, an image with no text and an unlabelled
    // field is refused, with those rules named.
    const bad = '<!DOCTYPE html><html><head><title>x</title></head><body><main><img src="/favicon.svg"><input type="text"></main></body></html>';
    const found = (await violationsOf(`${server.portalUrl}/axe-self-check`, bad)).map((v) => v.id);
    for (const rule of ['html-has-lang', 'image-alt', 'label']) assert.ok(found.includes(rule), `axe missed ${rule}: ${found}`);
  });
});

/** Opens an invitation and answers the dependant's identity questions. A browser signed in to
 * an account is asked first (a plain GET never swaps a session) and continues with it. */
async function answerInvitation(page, link, patient, { signedIn = false } = {}) {
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
async function emailedCode(email) {
  const html = await (await fetch(`${server.portalUrl}/dev/outbox`)).text();
  const mine = html.split('<li class="card dev-message">').slice(1)
    .filter((li) => li.includes(`>${email}</span>`) && li.includes('confirm-code'));
  assert.ok(mine.length > 0, `no sign-up code email to ${email} in the outbox`);
  const m = mine[0].match(/account is (\d{8})\./);
  assert.ok(m, `no eight-digit code in: ${mine[0]}`);
  return m[1];
}

async function signIn(page, { email, password }) {
  await page.getByLabel('Email address', { exact: true }).fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

function cents(dollarText) {
  const m = dollarText.replace(/,/g, '').match(/^\$(\d+)\.(\d{2})$/);
  assert.ok(m, `not a dollar amount: ${dollarText}`);
  return Number(m[1]) * 100 + Number(m[2]);
}

function dollars(c) {
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
async function addStaff(email, role, name = 'Dana Ruiz') {
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
async function enrolAndSignIn(page, staff) {
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
