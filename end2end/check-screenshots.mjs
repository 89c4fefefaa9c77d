#!/usr/bin/env node
// Checks the README's screenshots against a fresh set the browser suite made.
//
//   node end2end/check-screenshots.mjs <dir>    (<dir>: the suite's PATRIOTPAY_SCREENSHOTS)
//
// Fails (exit 1, every problem listed) unless:
//   - every image the README links under docs/screenshots/ has alt text, is checked in, and was
//     made again in <dir>;
//   - every PNG made in <dir> is checked in under docs/screenshots/ and linked from the README,
//     and nothing else is checked in there;
//   - each one, made or checked in, is a PNG whose header (IHDR) gives the width its name says
//     (`-phone`: 390 px, `-desktop`: 1280 px) and at least the screen's height (full-page
//     shots are taller); pixels are not compared, as fonts differ between machines;
//   - each checked-in PNG is at most 300 KB.
// To bring docs/screenshots/ up to date, see the README's "Screenshots" section.

import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { join, dirname, resolve, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SIZES } from './tests/screenshots.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const README = join(ROOT, 'README.md');
const CHECKED_IN = join(ROOT, 'docs', 'screenshots');
const MAX_BYTES = 300 * 1024;
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** { width, height } from a PNG's IHDR chunk, or a string saying why it is not a PNG. */
export function pngSize(file) {
  const head = Buffer.alloc(24);
  let read = 0;
  try {
    const bytes = readFileSync(file);
    read = bytes.copy(head, 0, 0, 24);
  } catch (e) {
    return `cannot be read (${e.code ?? e.message})`;
  }
  if (read < 24 || !head.subarray(0, 8).equals(PNG_SIGNATURE)) return 'is not a PNG (no PNG signature)';
  if (head.readUInt32BE(8) !== 13 || head.toString('latin1', 12, 16) !== 'IHDR') return 'is not a PNG (no IHDR chunk first)';
  return { width: head.readUInt32BE(16), height: head.readUInt32BE(20) };
}

/** The screen a screenshot's name says it was taken on (`statement-phone.png`: phone). */
function screenOf(name) {
  const m = name.match(/-([a-z]+)\.png$/);
  return m && SIZES[m[1]] ? { kind: m[1], ...SIZES[m[1]] } : null;
}

function pngs(dir) {
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.png')).sort() : [];
}

function main() {
  const made = process.argv[2];
  if (!made) {
    console.error('usage: node end2end/check-screenshots.mjs <dir the suite saved screenshots in>');
    process.exit(2);
  }
  const madeDir = resolve(made);
  const problems = [];
  const where = (dir, f) => relative(process.cwd(), join(dir, f)) || join(dir, f);

  // The README's links to docs/screenshots/ (markdown images; an <img> would be missed, so none
  // is allowed).
  const readme = readFileSync(README, 'utf8');
  const linked = new Map();
  for (const m of readme.matchAll(/!\[([^\]]*)\]\(\s*(?:\.\/)?docs\/screenshots\/([^)\s]+)\s*\)/g)) {
    const [, alt, name] = m;
    if (!alt.trim()) problems.push(`README: the image docs/screenshots/${name} has no alt text`);
    linked.set(name, alt);
  }
  if (/<img[^>]+docs\/screenshots\//.test(readme)) {
    problems.push('README: link the screenshots as markdown images ![alt](docs/screenshots/…), not <img>');
  }
  if (linked.size === 0) problems.push('README: links no image under docs/screenshots/');

  const madeFiles = pngs(madeDir);
  const checkedIn = pngs(CHECKED_IN);
  if (madeFiles.length === 0) {
    problems.push(`${madeDir}: the browser suite saved no screenshot there (was PATRIOTPAY_SCREENSHOTS set to it?)`);
  }

  for (const name of linked.keys()) {
    if (!checkedIn.includes(name)) problems.push(`README links docs/screenshots/${name}, which is not checked in`);
    if (madeFiles.length > 0 && !madeFiles.includes(name)) {
      problems.push(`README links docs/screenshots/${name}, but the browser suite no longer makes it`);
    }
  }
  for (const name of madeFiles) {
    if (!checkedIn.includes(name)) problems.push(`the browser suite made ${name}, which is missing from docs/screenshots/`);
    if (!linked.has(name)) problems.push(`the browser suite made ${name}, which the README does not show`);
  }
  for (const name of checkedIn) {
    if (!linked.has(name) && !madeFiles.includes(name)) {
      problems.push(`docs/screenshots/${name} is neither made by the suite nor shown in the README: remove it`);
    }
  }

  // Each image: a PNG of the width its name says.
  const check = (dir, name, checkedInCopy) => {
    const file = join(dir, name);
    if (!existsSync(file)) return;
    const screen = screenOf(name);
    if (!screen) {
      problems.push(`${where(dir, name)}: the name should end in ${Object.keys(SIZES).map((k) => `-${k}.png`).join(' or ')}`);
      return;
    }
    const size = pngSize(file);
    if (typeof size === 'string') {
      problems.push(`${where(dir, name)} ${size}`);
      return;
    }
    if (size.width !== screen.width) {
      problems.push(`${where(dir, name)} is ${size.width} px wide, not ${screen.width} px (a ${screen.kind} screenshot; a wider one means the page scrolls sideways)`);
    }
    if (size.height < screen.height) {
      problems.push(`${where(dir, name)} is ${size.height} px high, less than the ${screen.kind} screen's ${screen.height} px`);
    }
    if (checkedInCopy && statSync(file).size > MAX_BYTES) {
      problems.push(`${where(dir, name)} is ${Math.round(statSync(file).size / 1024)} KB, over ${MAX_BYTES / 1024} KB`);
    }
  };
  if (madeDir !== CHECKED_IN) for (const name of madeFiles) check(madeDir, name, false);
  for (const name of checkedIn) check(CHECKED_IN, name, true);

  if (problems.length > 0) {
    console.error(`error: the README's screenshots do not match what the browser suite makes (${problems.length} problem(s)):`);
    for (const p of problems) console.error(`  - ${p}`);
    console.error('To regenerate docs/screenshots/, run the command in the README\'s "Screenshots" section and commit the PNGs.');
    process.exit(1);
  }
  console.log(`screenshots: the README's ${linked.size} images were all made again (${madeFiles.length} PNGs, widths as named); docs/screenshots/ is up to date.`);
}

main();
