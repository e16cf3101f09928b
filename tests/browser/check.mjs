// Headless Chromium against a running layercake: the product-listing page
// and the carousel embed. Usage: node check.mjs BASE_URL OUT_DIR
//
// Checks: every image loads (naturalWidth > 0), a swatch click changes the
// tile's image, the carousel's arrows and keyboard move between views and
// every view's image loads, and nothing is logged as an error. Screenshots
// go to OUT_DIR. Exits non-zero with the reason on the first failure.

import { launch } from './launch.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [base, out] = process.argv.slice(2);
if (!base || !out) {
  console.error('usage: node check.mjs BASE_URL OUT_DIR');
  process.exit(2);
}
mkdirSync(out, { recursive: true });

const LOAD = 90_000; // a first load renders layers: generous, but bounded
const browser = await launch();
const errors = [];
const report = {};
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()} (${page.url()})`); });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message} (${page.url()})`));
  page.on('response', (r) => { if (r.status() >= 400) errors.push(`HTTP ${r.status()} ${r.url()}`); });

  // The listing: every tile's image, scrolled into view one after another
  // (they are lazy), must load.
  let started = Date.now();
  await page.goto(`${base}/`, { waitUntil: 'domcontentloaded', timeout: LOAD });
  const tiles = page.locator('figure.tile img');
  const count = await tiles.count();
  if (count < 6) throw new Error(`the listing has ${count} tiles`);
  for (let i = 0; i < count; i++) {
    const img = tiles.nth(i);
    await img.scrollIntoViewIfNeeded({ timeout: LOAD });
    await img.evaluate((el) => el.complete && el.naturalWidth > 0 ? true : new Promise((ok, ko) => {
      el.addEventListener('load', () => ok(true), { once: true });
      el.addEventListener('error', () => ko(new Error(`image failed: ${el.currentSrc}`)), { once: true });
    }), null, { timeout: LOAD });
    const w = await img.evaluate((el) => el.naturalWidth);
    if (!(w > 0)) throw new Error(`tile ${i}: naturalWidth ${w}`);
  }
  report.plp = { tiles: count, ms: Date.now() - started };
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(out, 'plp.png'), fullPage: true });

  // A swatch click switches the first tile's image (and its carousel link).
  const tile = page.locator('figure.tile').first();
  const img = tile.locator('img');
  const before = await img.evaluate((el) => el.currentSrc);
  const swatch = tile.locator('.swatch[aria-pressed="false"]').first();
  const label = await swatch.getAttribute('data-label');
  await swatch.click();
  // The new image, loaded (an image that fails to load stays incomplete
  // with naturalWidth 0 and times this out; its error is also logged).
  await page.waitForFunction(([el, prev]) => el.currentSrc && el.currentSrc !== prev
    && el.complete && el.naturalWidth > 0, [await img.elementHandle(), before], { timeout: LOAD });
  const after = await img.evaluate((el) => ({ src: el.currentSrc, w: el.naturalWidth }));
  if (!decodeURIComponent(after.src).includes(`"${label}"`)) {
    throw new Error(`the new image is not of ${label}: ${after.src}`);
  }
  if ((await tile.locator('.opt').textContent()) !== label) throw new Error('the label did not follow the swatch');
  if ((await tile.locator('.swatch[aria-pressed="true"]').getAttribute('data-label')) !== label) {
    throw new Error('the pressed swatch is not the clicked one');
  }
  const href = await tile.locator('a').getAttribute('href');
  if (!decodeURIComponent(href).includes(`"${label}"`)) throw new Error(`the carousel link is not of ${label}: ${href}`);
  report.swatch = { label, before, after: after.src };

  // The carousel of that configuration: every view, by arrows and keys.
  started = Date.now();
  await page.goto(new URL(href, base).href, { waitUntil: 'domcontentloaded', timeout: LOAD });
  const slides = page.locator('.s img');
  const views = await slides.count();
  if (views < 2) throw new Error(`the carousel has ${views} views`);
  const loaded = (k) => slides.nth(k).evaluate((el) => el.complete && el.naturalWidth > 0 ? true : new Promise((ok, ko) => {
    el.addEventListener('load', () => ok(true), { once: true });
    el.addEventListener('error', () => ko(new Error(`image failed: ${el.currentSrc}`)), { once: true });
  }), null, { timeout: LOAD });
  const seen = [];
  for (let k = 0; k < views; k++) {
    await loaded(k);
    seen.push(await page.evaluate(() => document.documentElement.dataset.view));
    if (k === 0) await page.screenshot({ path: join(out, 'carousel.png') });
    await page.click('#next');
  }
  if (new Set(seen).size !== views) throw new Error(`the arrows showed ${seen.join(', ')}`);
  const first = await page.evaluate(() => document.documentElement.dataset.view);
  await page.focus('#c');
  await page.keyboard.press('ArrowRight');
  const second = await page.evaluate(() => document.documentElement.dataset.view);
  if (first === second) throw new Error('ArrowRight did not move the carousel');
  const widths = await slides.evaluateAll((els) => els.map((el) => el.naturalWidth));
  if (!widths.every((w) => w > 0)) throw new Error(`carousel images: naturalWidth ${widths}`);
  report.carousel = { views: seen, ms: Date.now() - started };

  // The spin of the same configuration, as a page of its own: its first
  // frame paints (a screenshot of it is the sofa, not a blank page).
  await page.goto(new URL(href.replace('/embed/carousel', '/embed/spin'), base).href, { waitUntil: 'domcontentloaded', timeout: LOAD });
  await page.waitForFunction(() => Number(document.documentElement.dataset.loaded || 0) >= 1, null, { timeout: LOAD });
  await page.waitForFunction(() => !document.getElementById('c').classList.contains('pending'), null, { timeout: LOAD });
  await page.screenshot({ path: join(out, 'spin.png') });
  report.spin = { view: await page.evaluate(() => document.documentElement.dataset.view) };

  if (errors.length) throw new Error(`errors in the browser:\n${errors.join('\n')}`);
  console.log(JSON.stringify(report));
} catch (e) {
  console.error(`browser check failed: ${e.message}`);
  if (errors.length) console.error(errors.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
}
