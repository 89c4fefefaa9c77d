// Accessibility checks for the browser suite (not a test file itself).
//
// axe-core runs on the exact HTML the JavaScript-less browser was shown: a separate browser
// context with JavaScript on and the page's CSP bypassed (for the check only) loads the same URL,
// answered with that HTML, with the real stylesheet, and axe checks it against WCAG 2.1 A and AA.
// Each distinct page (path, language, heading, error state, view-as banner) is checked once.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import AxeBuilder from '@axe-core/playwright';

const TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
const LOCALES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'app', 'locales');

let context = null;
const seen = new Set();
/** Every page checked: { key, lang, url, violations (axe rule ids, none when it passed) }. */
export const checkedPages = [];

export async function startA11y(browser) {
  context = await browser.newContext({ javaScriptEnabled: true, bypassCSP: true });
}

export async function stopA11y() {
  await context?.close();
}

/** What makes a page distinct for the check: its path, language, first heading, error state
 *  (and the view-as banner). */
function pageKey(url, html) {
  const lang = (html.match(/<html lang="([a-z-]+)"/) ?? [])[1] ?? '?';
  const h1 = ((html.match(/<h1[^>]*>([\s\S]*?)<\/h1>/) ?? [])[1] ?? '').replace(/<[^>]+>/g, '').trim();
  // An error summary, or a field marked invalid (forms that put the message on the field only).
  let state = html.includes('class="error-summary"') || html.includes('aria-invalid="true"') ? 'error' : 'ok';
  // Staff viewing as a patient: every page carries the view-as banner (with the consent form
  // where the practice lets staff take a payment).
  if (html.includes('class="view-as-banner"')) {
    state += html.includes('action="/staff/view-as/consent"') ? ', viewing as (consent form)' : ', viewing as';
  }
  // Ids in paths (checkouts, payments, statements) name instances of one page, not pages.
  const path = new URL(url).pathname.replace(/\/[a-z]+_[A-Za-z0-9_]{8,}/g, '/{id}');
  return { key: `${path} | ${lang} | ${h1} | ${state}`, lang };
}

/** axe's WCAG 2.1 A and AA violations of `html` served at `url` (its stylesheet from the server). */
export async function violationsOf(url, html) {
  const axePage = await context.newPage();
  try {
    await axePage.route(
      (u) => u.href === url,
      (route) =>
        route.request().isNavigationRequest()
          ? route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: html })
          : route.continue(),
    );
    await axePage.goto(url, { waitUntil: 'load' });
    return (await new AxeBuilder({ page: axePage }).withTags(TAGS).analyze()).violations;
  } finally {
    await axePage.close();
  }
}

/** Runs axe on what `page` shows now; fails with every violation and where it is. */
export async function checkA11y(page) {
  const url = page.url();
  if (!url.startsWith('http')) return;
  const html = await page.content();
  const { key, lang } = pageKey(url, html);
  if (seen.has(key)) return;
  seen.add(key);
  const violations = await violationsOf(url, html);
  checkedPages.push({ key, lang, url, violations: violations.map((v) => v.id) });
  if (violations.length > 0) {
    const detail = violations
      .map((v) => `${v.id} (${v.impact}): ${v.help}\n    ${v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary?.replace(/\s+/g, ' ')}`).join('\n    ')}`)
      .join('\n  ');
    assert.fail(`axe found ${violations.length} WCAG 2.1 AA violation(s) on ${key}:\n  ${detail}`);
  }
}

/** The message catalog of `lang` ('en', 'es'), for finding controls by their words. */
export function catalog(lang) {
  const out = {};
  let last = null;
  for (const line of readFileSync(join(LOCALES, `${lang}.ftl`), 'utf8').split('\n')) {
    const m = line.match(/^([a-z][a-z0-9_-]*) = (.*)$/);
    if (m) {
      out[m[1]] = m[2];
      last = m[1];
    } else if (last && /^\s+\S/.test(line)) {
      out[last] += ' ' + line.trim();
    } else {
      last = null;
    }
  }
  return out;
}
