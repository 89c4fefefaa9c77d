// The README's screenshots (not a test file itself).
//
// With PATRIOTPAY_SCREENSHOTS=<dir> set, the journeys save each main page as it is at that
// step, full page, at phone width (390 × 844) and desktop width (1280 × 800):
// <dir>/<name>-phone.png and <dir>/<name>-desktop.png. Without it, `shoot` does nothing.
// A relative <dir> is taken from where the suite runs (npm test runs in end2end/). The pages
// show only the demo's fictional patients, practice and example.test addresses.
// ../check-screenshots.mjs compares what was made with what the README links (CI runs it).

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';

export const SCREENSHOT_DIR = process.env.PATRIOTPAY_SCREENSHOTS
  ? resolve(process.env.PATRIOTPAY_SCREENSHOTS)
  : null;

/** The widths, by the suffix of the file's name (check-screenshots.mjs reads the same table). */
export const SIZES = {
  phone: { width: 390, height: 844 },
  desktop: { width: 1280, height: 800 },
};

/** Every page the journeys shoot, in the README's order. */
export const SHOTS = ['verify', 'summary', 'statement', 'pay', 'receipt', 'account', 'staff-home'];

const taken = new Set();

/** Saves what `page` shows at both widths (when screenshots are asked for), then gives the page
 *  its own size back. */
export async function shoot(page, name) {
  assert.ok(SHOTS.includes(name), `${name} is not one of the README's screenshots: ${SHOTS}`);
  if (!SCREENSHOT_DIR) return;
  assert.ok(!taken.has(name), `screenshot ${name} taken twice`);
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const own = page.viewportSize();
  try {
    for (const [suffix, size] of Object.entries(SIZES)) {
      await page.setViewportSize(size);
      await page.screenshot({
        path: join(SCREENSHOT_DIR, `${name}-${suffix}.png`),
        fullPage: true,
        animations: 'disabled',
        caret: 'hide',
      });
    }
  } finally {
    if (own) await page.setViewportSize(own);
  }
  taken.add(name);
}

/** After the journeys: every screenshot was taken (when they were asked for). */
export function checkShots() {
  const missing = SHOTS.filter((n) => !taken.has(n));
  assert.deepEqual(missing, [], `screenshots not taken by any journey: ${missing}`);
  console.log(`[e2e] screenshots: ${taken.size * Object.keys(SIZES).length} PNGs in ${SCREENSHOT_DIR}`);
}
