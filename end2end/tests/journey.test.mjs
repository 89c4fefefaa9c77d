// Real-browser journey through the PatriotPay portal and its sandbox card processor.
//
// Chromium runs with JavaScript DISABLED: every step must work as plain HTML forms, links
// and redirects, the way the portal is built (server-rendered, no hydration).
//
// Run: PATRIOTPAY_BIN=/path/to/patriotpay npm test   (see ../README.md). The server, the browser
// and the shared helpers are in harness.mjs; the README's screenshots in screenshots.mjs.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkA11y, checkedPages, catalog, violationsOf } from './a11y.mjs';
import {
  server, browser, startSuite, stopSuite, execFileP, RESULTS_DIR, STEP_TIMEOUT_MS, TEST_TIMEOUT_MS,
  demoLink, demoInvite, inBrowser, path, atPortal, visible, heading, verifyDob, openLink, payAmount,
  payOnSandbox, receiptValue, receipt, accessibleDescription, answerInvitation, emailedCode, signIn,
  cents, dollars, addStaff, enrolAndSignIn, text,
} from './harness.mjs';
import { shoot, checkShots, SCREENSHOT_DIR } from './screenshots.mjs';

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

// ---- the journeys -------------------------------------------------------------------------

describe('PatriotPay patient journey (Chromium, JavaScript disabled)', { concurrency: false }, () => {
  before(startSuite, { timeout: 90_000 });
  after(stopSuite);

  it('patient pays the full balance with a test card', { timeout: TEST_TIMEOUT_MS }, async () => {
    await inBrowser('full payment', async (page) => {
      await openLink(page, server.firstLink);
      await heading(page, 'Confirm who you are');
      // Neutral until the date of birth is accepted: no practice named.
      assert.equal(await page.getByText('Riverside Family Medicine').count(), 0);
      await shoot(page, 'verify');

      await verifyDob(page, PATIENT_1);
      await atPortal(page, '/summary');
      await visible(page.getByText('Balance due', { exact: true }));
      await visible(page.getByText('$112.00', { exact: true }));
      await shoot(page, 'summary');

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
      await shoot(page, 'statement');

      const amount = page.getByLabel('Amount to pay (USD)', { exact: true });
      assert.equal(await amount.inputValue(), '112.00');
      await page.getByRole('button', { name: 'Pay', exact: true }).click();

      await payOnSandbox(page, { number: CARD_OK, exp: '12 / 34', cvc: '123' }, { shot: 'pay' });
      const r = await receipt(page);
      assert.equal(r.amount, '$112.00');
      assert.equal(r.card, 'Visa ending 4242');
      assert.equal(r.remaining, '$0.00');
      await shoot(page, 'receipt');

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
      await shoot(page, 'account');

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
      await shoot(page, 'staff-home');
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

  // The staff pages no journey above reaches, in two journeys that share one practice.
  const PRACTICE = 'Riverside Family Medicine';
  const english = async (page) => page.getByRole('link', { name: 'English', exact: true }).click();
  const spanish = async (page) => page.getByRole('link', { name: 'Español', exact: true }).click();

  it('a security officer: emergency access, the alert console, the audit log', { timeout: 240_000 }, async () => {
    // Emergency access is refused without a reason (in Spanish and English), then granted, which
    // raises an alert; on the alert console an empty note is refused, then the alert is
    // acknowledged and noted; the audit log finds the grant and both changes by their actions,
    // and refuses a date that is none.
    const officer = await addStaff('security.e2e@example.test', 'security-officer', 'Noor Haddad');
    await inBrowser('security officer', async (page) => {
      await enrolAndSignIn(page, officer);
      await heading(page, EN['staff-home-title']);
      await visible(page.getByText(text(EN, 'staff-role-line', { role: EN['role-security-officer'], practice: PRACTICE }), { exact: true }));
      await visible(page.getByText(EN['staff-search-denied'], { exact: true }));
      await visible(page.getByRole('region', { name: EN['staff-bg-title'], exact: true }));

      // Emergency access without a reason: refused, saying what it needs, in Spanish and English.
      await spanish(page);
      await atPortal(page, '/staff');
      await heading(page, ES['staff-home-title']);
      await page.getByRole('button', { name: ES['staff-bg-submit'], exact: true }).click();
      await atPortal(page, '/staff/break-glass');
      await visible(page.getByRole('alert').getByText(ES['staff-bg-invalid'], { exact: true }));
      // Back to English from the home page: on a form's answer the switch (`?lang=en`) would ask
      // for the form's address with a GET, which answers 405.
      await page.goto(`${server.portalUrl}/staff?lang=en`);
      await atPortal(page, '/staff');
      await page.getByRole('button', { name: EN['staff-bg-submit'], exact: true }).click();
      await atPortal(page, '/staff/break-glass');
      await heading(page, EN['staff-home-title']);
      await visible(page.getByRole('alert').getByText(EN['staff-bg-invalid'], { exact: true }));
      assert.equal(await page.getByText(EN['staff-bg-granted']).count(), 0, 'nothing was granted');

      // With a reason: granted for 30 minutes, announced, and the role's search appears.
      await page.getByLabel(EN['staff-bg-role'], { exact: true }).selectOption('support-agent');
      await page.getByLabel(EN['staff-bg-minutes'], { exact: true }).fill('30');
      await page.getByLabel(EN['staff-bg-reason'], { exact: true }).fill('Checking a disputed refund the practice reported (SEC-77)');
      await page.getByRole('button', { name: EN['staff-bg-submit'], exact: true }).click();
      await atPortal(page, '/staff/break-glass');
      await visible(page.getByRole('status').filter({ hasText: EN['staff-bg-granted'] }));
      await visible(page.getByRole('status').filter({ hasText: new RegExp(`^Emergency access: Support agent at ${PRACTICE} until .+ UTC$`) }));
      await visible(page.getByRole('heading', { level: 2, name: EN['staff-search-title'], exact: true }));

      // The alert console: the emergency access raised an open alert naming the officer.
      await page.getByRole('link', { name: EN['alerts-home-link'], exact: true }).click();
      await atPortal(page, '/staff/alerts');
      await heading(page, text(EN, 'alerts-title', { practice: PRACTICE }));
      const alert = page.locator('li.alert').filter({ hasText: officer.email });
      assert.equal(await alert.count(), 1, 'one alert names the officer');
      const id = (await alert.getAttribute('id')).replace(/^alert-/, '');
      await visible(alert.getByRole('heading', { level: 3, name: `#${id} break-glass`, exact: true }));
      await visible(alert.getByText(EN['alerts-open'], { exact: true }));

      // An empty note is refused on the field, which says why; nothing is noted.
      await alert.getByRole('button', { name: EN['alerts-note-add'], exact: true }).click();
      await atPortal(page, '/staff/alerts/note');
      const note = page.getByLabel(text(EN, 'alerts-note-label', { id }), { exact: true });
      assert.equal(await note.getAttribute('aria-invalid'), 'true');
      assert.equal(await accessibleDescription(page, note), EN['alerts-note-empty']);

      // Acknowledged, then noted.
      await page.getByRole('button', { name: text(EN, 'alerts-ack-label', { id }), exact: true }).click();
      await atPortal(page, '/staff/alerts');
      await visible(page.getByRole('status').filter({ hasText: EN['alerts-acked'] }));
      const acked = page.locator(`li#alert-${id}`);
      await visible(acked.getByText(text(EN, 'alerts-acked-by', { who: 'Noor Haddad', when: '' }).trim()));
      assert.equal(await page.getByRole('button', { name: text(EN, 'alerts-ack-label', { id }), exact: true }).count(), 0, 'no second acknowledge');
      const written = 'Granted to check a disputed refund; it ends by itself in 30 minutes.';
      await page.getByLabel(text(EN, 'alerts-note-label', { id }), { exact: true }).fill(written);
      await acked.getByRole('button', { name: EN['alerts-note-add'], exact: true }).click();
      await atPortal(page, '/staff/alerts');
      await visible(page.getByRole('status').filter({ hasText: EN['alerts-noted'] }));
      await visible(acked.locator('blockquote').getByText(written, { exact: true }));

      // The same console in Spanish.
      await spanish(page);
      await atPortal(page, '/staff/alerts');
      await heading(page, text(ES, 'alerts-title', { practice: PRACTICE }));
      await visible(page.locator(`li#alert-${id}`).getByText(text(ES, 'alerts-acked-by', { who: 'Noor Haddad', when: '' }).trim()));
      await english(page);
      await atPortal(page, '/staff/alerts');

      // The audit log: the grant and the alert's changes, each found by the start of its action.
      await page.getByRole('link', { name: EN['staff-payments-back'], exact: true }).click();
      await atPortal(page, '/staff');
      await page.getByRole('link', { name: EN['staff-audit-link'], exact: true }).click();
      await atPortal(page, '/staff/audit');
      await heading(page, EN['staff-audit-title']);
      await visible(page.getByText(text(EN, 'staff-audit-practice-one', { practice: PRACTICE }), { exact: true }));
      await visible(page.getByRole('table', { name: EN['staff-audit-caption'] }));
      const actions = async () => page.locator('tr.audit-row td:nth-child(6)').allInnerTexts();
      const filterBy = async (action) => {
        await page.getByLabel(EN['staff-audit-action'], { exact: true }).fill(action);
        await page.getByRole('button', { name: EN['staff-audit-submit'], exact: true }).click();
        await page.waitForURL((u) => u.pathname === '/staff/audit' && u.searchParams.get('action') === action);
        await atPortal(page, '/staff/audit');
      };
      await filterBy('breakglass.');
      assert.deepEqual(await actions(), ['breakglass.grant'], 'one emergency access, the one granted');
      const grant = page.locator('tr.audit-row').first();
      await visible(grant.getByRole('cell', { name: EN['staff-audit-outcome-success'], exact: true }));
      await filterBy('alert.');
      assert.deepEqual((await actions()).sort(), ['alert.acknowledge', 'alert.note']);

      // A date that is none: refused with what a date looks like, and no events shown; the
      // same in Spanish (the switch shows the log unfiltered: it keeps no query).
      const badDate = async (messages) => {
        await page.getByLabel(messages['staff-audit-from'], { exact: true }).fill('2026-02-30');
        await page.getByRole('button', { name: messages['staff-audit-submit'], exact: true }).click();
        await page.waitForURL((u) => u.searchParams.get('from') === '2026-02-30');
        await atPortal(page, '/staff/audit');
        await visible(page.getByRole('alert').getByText(messages['staff-audit-bad-date'], { exact: true }));
        assert.equal(await page.getByRole('table').count(), 0, 'a refused filter shows no events');
      };
      await badDate(EN);
      await spanish(page);
      await atPortal(page, '/staff/audit');
      await heading(page, ES['staff-audit-title']);
      await badDate(ES);
      await english(page);
      await atPortal(page, '/staff/audit');
    });
  });

  it('a practice admin: act on behalf, the support console, view-as with the patient\'s consent', { timeout: 240_000 }, async () => {
    // The admin turns "act on behalf" on; on Jordan's console unlocks a locked pay link (refused
    // without a reason), revokes it, sends a new one and pauses and resumes the reminders; views
    // as Jordan (refused without a reason); is refused a payment until the patient's consent is
    // noted (`/staff/view-as/consent`), then takes one; ends the view and turns the setting off.
    const admin = await addStaff('console.admin.e2e@example.test', 'practice-admin', 'Kai Moreno');
    // A pay link of Jordan's, locked by five wrong answers (the support console unlocks it).
    // With the lockout journey's five, that is the ten wrong answers a patient may get a day.
    const locked = await demoLink(2);
    await inBrowser('a link to unlock', async (page) => {
      await openLink(page, locked);
      for (let attempt = 1; attempt <= 5; attempt += 1) await verifyDob(page, { month: '01', day: '01', year: '1970' });
      await heading(page, 'This link is locked');
    });

    await inBrowser('practice admin: support console and view-as consent', async (page) => {
      await enrolAndSignIn(page, admin);

      // Act on behalf: off by default (view-as is read-only); the admin turns it on.
      await page.getByRole('link', { name: EN['act-on-behalf-title'], exact: true }).click();
      await atPortal(page, '/staff/act-on-behalf');
      await heading(page, EN['act-on-behalf-title']);
      const setting = page.locator('section.card').filter({ has: page.getByRole('heading', { name: PRACTICE, exact: true }) });
      await visible(setting.getByText(EN['act-on-behalf-off'], { exact: true }));
      await setting.getByRole('button', { name: EN['act-on-behalf-turn-on'], exact: true }).click();
      await atPortal(page, '/staff/act-on-behalf');
      await visible(page.getByRole('status').filter({ hasText: EN['act-on-behalf-changed'] }));
      await visible(setting.getByText(EN['act-on-behalf-on'], { exact: true }));

      // Jordan, found by phone (the import made a second Jordan Whitlock with another number).
      await page.goto(server.portalUrl + '/staff');
      await page.getByLabel(EN['staff-search-phone'], { exact: true }).fill('(555) 010-0002');
      await page.getByRole('button', { name: EN['staff-search-button'], exact: true }).click();
      await page.getByRole('link', { name: text(EN, 'staff-console-link-label', { patient: 'Jordan Whitlock' }), exact: true }).click();
      await page.waitForURL((u) => /^\/staff\/patients\/pat_[0-9a-f]{32}$/.test(u.pathname));
      const consolePath = path(page);
      await atPortal(page, consolePath);
      await heading(page, 'Jordan Whitlock');
      await visible(page.getByText(text(EN, 'staff-console-lead', { practice: PRACTICE }), { exact: true }));

      // The console in Spanish.
      await spanish(page);
      await atPortal(page, consolePath);
      await visible(page.getByRole('heading', { level: 2, name: ES['staff-console-statements'], exact: true }));
      await visible(page.getByText(text(ES, 'staff-console-lead', { practice: PRACTICE }), { exact: true }));
      await english(page);
      await atPortal(page, consolePath);

      // The locked link: unlocking without a reason is refused on the field; with one, it is
      // unlocked and its wrong answers reset; then it is revoked.
      const lockedLink = page.locator('li.console-link').filter({ hasText: EN['staff-console-link-locked'] });
      assert.ok(await lockedLink.count() >= 1, 'a locked link is listed');
      const linkId = await lockedLink.first().getAttribute('id');
      const item = page.locator(`li#${linkId}`);
      await item.getByRole('button', { name: EN['staff-console-unlock'], exact: true }).click();
      await atPortal(page, '/staff/links/unlock');
      await heading(page, 'Jordan Whitlock');
      const reason = item.getByLabel(EN['staff-console-unlock-reason'], { exact: true });
      assert.equal(await reason.getAttribute('aria-invalid'), 'true');
      assert.match(await accessibleDescription(page, reason), new RegExp(`${EN['staff-console-unlock-empty']}$`));
      await reason.fill('Called back on the number on file; date of birth and address confirmed.');
      await item.getByRole('button', { name: EN['staff-console-unlock'], exact: true }).click();
      await atPortal(page, consolePath);
      await visible(page.getByRole('status').filter({ hasText: EN['staff-console-unlocked'] }));
      await visible(item.locator('dd.link-state').getByText(EN['staff-console-link-active'], { exact: true }));
      await item.getByRole('button', { name: /^Revoke the pay link made / }).click();
      await atPortal(page, consolePath);
      await visible(page.getByRole('status').filter({ hasText: EN['staff-console-revoked'] }));
      await visible(item.locator('dd.link-state').getByText(EN['staff-console-link-revoked'], { exact: true }));

      // A fresh link for the statement, texted to Jordan's number; then its reminders paused and resumed.
      await page.getByRole('button', { name: /^Send a new pay link for the statement of / }).first().click();
      await atPortal(page, '/staff/links/resend');
      await visible(page.getByRole('status').filter({ hasText: text(EN, 'staff-console-resent-texted', { digits: '0002' }) }));
      await page.getByRole('button', { name: /^Pause the text reminders of the statement of / }).first().click();
      await atPortal(page, consolePath);
      await visible(page.getByRole('status').filter({ hasText: EN['staff-console-reminders-paused'] }));
      await visible(page.getByRole('cell').getByText(EN['staff-console-reminders-paused-state'], { exact: true }).first());
      await page.getByRole('button', { name: /^Resume the text reminders of the statement of / }).first().click();
      await atPortal(page, consolePath);
      await visible(page.getByRole('status').filter({ hasText: EN['staff-console-reminders-resumed'] }));

      // View as Jordan: without a reason it is refused on the field, the ticket kept.
      await page.getByLabel(EN['viewas-ticket'], { exact: true }).fill('SUP-3003');
      await page.getByRole('button', { name: EN['viewas-start'], exact: true }).click();
      await atPortal(page, consolePath);
      const why = page.getByLabel(EN['viewas-reason'], { exact: true });
      assert.equal(await why.getAttribute('aria-invalid'), 'true');
      await visible(page.getByRole('alert').filter({ hasText: EN['viewas-err-reason'] }));
      assert.equal(await page.getByLabel(EN['viewas-ticket'], { exact: true }).inputValue(), 'SUP-3003');
      await why.fill('Patient on the phone wants to pay by card');
      await page.getByRole('button', { name: EN['viewas-start'], exact: true }).click();
      await atPortal(page, '/summary');
      const banner = page.getByRole('status').filter({ hasText: 'you are viewing as' });
      assert.match(await banner.innerText(), /Kai Moreno, you are viewing as Jordan Whitlock\. \d+ min left\./);
      await visible(banner.getByText(EN['viewas-act-consent-needed'], { exact: true }));
      await spanish(page);
      await atPortal(page, '/summary');
      await visible(page.getByRole('status').filter({ hasText: ES['viewas-act-consent-needed'] }));
      await visible(page.getByRole('button', { name: ES['viewas-note-consent'], exact: true }));
      await english(page);
      await atPortal(page, '/summary');

      // A payment before the patient's consent is noted: refused, saying so; nothing charged.
      await payAmount(page, '1.00');
      await atPortal(page, '/pay');
      await heading(page, EN['viewas-refused-title']);
      await visible(page.getByText(EN['viewas-refused-consent'], { exact: true }));

      // The consent noted (the form posts to /staff/view-as/consent), the payment goes through.
      await page.goto(server.portalUrl + '/summary');
      await page.getByRole('button', { name: EN['viewas-note-consent'], exact: true }).click();
      await atPortal(page, '/summary');
      await visible(page.getByRole('status').filter({ hasText: 'you are viewing as' }).getByText(EN['viewas-act-consent-noted'], { exact: true }));
      assert.equal(await page.getByRole('button', { name: EN['viewas-note-consent'], exact: true }).count(), 0, 'consent is noted once');
      // What the page says about the consent is checked at the end, so the payment is tried too.
      const payField = page.getByLabel('Amount to pay (USD)', { exact: true });
      const afterConsent = {
        notice: await page.getByRole('status').filter({ hasText: EN['viewas-consent-noted'] }).count(),
        invalid: await payField.getAttribute('aria-invalid'),
        says: await accessibleDescription(page, payField),
      };
      await payAmount(page, '1.00');
      await payOnSandbox(page, { number: CARD_OK, exp: '12 / 34', cvc: '123' });
      const r = await receipt(page);
      assert.equal(r.amount, '$1.00');
      await page.getByRole('button', { name: EN['viewas-stop'], exact: true }).click();
      await atPortal(page, consolePath);
      await visible(page.getByRole('status').filter({ hasText: EN['viewas-ended'] }));

      // Act on behalf off again: view-as is read-only for whoever comes next.
      await page.goto(server.portalUrl + '/staff/act-on-behalf');
      await setting.getByRole('button', { name: EN['act-on-behalf-turn-off'], exact: true }).click();
      await atPortal(page, '/staff/act-on-behalf');
      await visible(setting.getByText(EN['act-on-behalf-off'], { exact: true }));

      // The page after the consent said so, and its pay form was not in error.
      assert.equal(afterConsent.invalid, null, `after the consent, the pay form's amount is in error: "${afterConsent.says}"`);
      assert.equal(afterConsent.notice, 1, `after the consent, no status says "${EN['viewas-consent-noted']}"`);
    });
  });

  it('the README screenshots were all taken', { skip: !SCREENSHOT_DIR && 'PATRIOTPAY_SCREENSHOTS is not set' }, () => {
    checkShots();
  });

  it('axe checked the pages of every flow in both languages, and it does find failures', async () => {
    const en = checkedPages.filter((p) => p.lang === 'en').length;
    const es = checkedPages.filter((p) => p.lang === 'es').length;
    const failing = checkedPages.filter((p) => p.violations.length > 0);
    const verdict = failing.length === 0 ? 'no WCAG 2.1 AA violations' : `WCAG 2.1 AA violations on ${failing.length}`;
    console.log(`[e2e] axe: ${checkedPages.length} distinct pages checked, ${en} in English, ${es} in Spanish, ${verdict}:`);
    for (const p of checkedPages) console.log(`[e2e]   ${p.key}${p.violations.length ? `   VIOLATES ${p.violations.join(', ')}` : ''}`);
    // 46 pages before the staff journeys (alerts, audit log, console, view-as consent) were added.
    assert.ok(en >= 40 && es >= 25, `too few pages checked: ${en} English, ${es} Spanish`);
    // The check can fail: a page with no language, an image with no text and an unlabelled
    // field is refused, with those rules named.
    const bad = '<!DOCTYPE html><html><head><title>x</title></head><body><main><img src="/favicon.svg"><input type="text"></main></body></html>';
    const found = (await violationsOf(`${server.portalUrl}/axe-self-check`, bad)).map((v) => v.id);
    for (const rule of ['html-has-lang', 'image-alt', 'label']) assert.ok(found.includes(rule), `axe missed ${rule}: ${found}`);
    assert.deepEqual(failing.map((p) => p.key), [], 'pages with WCAG 2.1 AA violations (their journeys say where)');
  });
});
