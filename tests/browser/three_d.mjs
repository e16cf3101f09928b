// Headless Chromium against a running layercake serving a 3D asset whose
// layers render slower than the server's wait budget (cold, nothing
// prefetched but the turntable): the listing page, the carousel and the
// 360° spin embed. Usage: node three_d.mjs BASE_URL OUT_DIR ASSET_ID [listing]
// ("listing": the listing only, as scripts/bench-plp.sh --3d times it).
//
// Checks: every listing tile and carousel slide ends up loaded, and one
// that is still rendering shows the placeholder (its image hidden, never
// a broken image) until a retry loads it; the spin embed turns by drag and
// by the arrow keys, and every one of its frames loads; nothing is logged
// as an error but the 503s of images still rendering. Screenshots go to
// OUT_DIR (plp.png, carousel.png, spin.png). Prints a JSON report last;
// exits non-zero with the reason on the first failure.

import { launch } from './launch.mjs';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [base, out, asset, only] = process.argv.slice(2);
if (!base || !out || !asset) {
  console.error('usage: node three_d.mjs BASE_URL OUT_DIR ASSET_ID');
  process.exit(2);
}
mkdirSync(out, { recursive: true });

// Cold 3D layers render on demand: generous, but bounded (LOAD_MS: the
// benchmark of a cold listing at full settings waits longer).
const LOAD = Number(process.env.LOAD_MS || 240_000);
const browser = await launch();
const errors = [];
const report = {};
class Done extends Error {}
// Counts, on every page, the boxes that ever showed the placeholder and
// whether a pending image was ever visible (a broken image on screen).
const watch = () => {
  window.__pending = 0;
  window.__shownBroken = 0;
  new MutationObserver((records) => {
    for (const r of records) {
      const el = r.target;
      if (r.attributeName !== 'class' || !el.matches || !el.matches('.ph, .s, #c')) continue;
      if (el.classList.contains('pending') && !el.__seen) {
        el.__seen = true;
        window.__pending++;
        const img = el.querySelector('img');
        // The spin keeps the last loaded frame on screen; tiles and slides hide theirs.
        if (img && el.id !== 'c' && getComputedStyle(img).visibility !== 'hidden') window.__shownBroken++;
      }
    }
  }).observe(document, { subtree: true, attributes: true, attributeFilter: ['class'] });
};
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.addInitScript(watch);
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 503/.test(m.text())) errors.push(`console: ${m.text()} (${page.url()})`);
  });
  page.on('pageerror', (e) => errors.push(`page error: ${e.message} (${page.url()})`));
  page.on('response', (r) => {
    if (r.status() >= 400 && r.status() !== 503) errors.push(`HTTP ${r.status()} ${r.url()}`);
  });
  const settle = async (label) => {
    const shown = await page.evaluate(() => window.__shownBroken);
    if (shown > 0) throw new Error(`${label}: ${shown} image(s) still rendering were shown instead of the placeholder`);
    return page.evaluate(() => window.__pending);
  };

  // The listing: every tile (lazy, scrolled into view in turn) loads.
  let started = Date.now();
  await page.goto(`${base}/`, { waitUntil: 'domcontentloaded', timeout: LOAD });
  const tiles = page.locator('figure.tile .ph');
  const count = await tiles.count();
  if (count < 6) throw new Error(`the listing has ${count} tiles`);
  for (let i = 0; i < count; i++) {
    const box = tiles.nth(i);
    await box.scrollIntoViewIfNeeded({ timeout: LOAD });
    await page.waitForFunction((el) => el.classList.contains('ready') || el.classList.contains('failed'),
      await box.elementHandle(), { timeout: LOAD, polling: 200 });
    if (await box.evaluate((el) => el.classList.contains('failed'))) throw new Error(`tile ${i} never loaded`);
  }
  report.plp = { tiles: count, ms: Date.now() - started, placeholders: await settle('listing') };
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(out, 'plp.png'), fullPage: false });
  if (only === 'listing') throw new Done();
  const spinLink = await page.locator('figure.tile a.spin').first().getAttribute('href');
  if (!spinLink || !spinLink.startsWith('/embed/spin?')) throw new Error(`no 360° link on the tiles: ${spinLink}`);

  // The carousel: the still views, each loads (the first ones cold).
  started = Date.now();
  await page.goto(`${base}/embed/carousel?assetId=${asset}`, { waitUntil: 'domcontentloaded', timeout: LOAD });
  const slides = page.locator('.s');
  const n = await slides.count();
  await page.focus('#c');
  for (let k = 0; k < n; k++) {
    if (k > 0) await page.keyboard.press('ArrowRight');
    await page.waitForFunction((el) => el.classList.contains('ready'), await slides.nth(k).elementHandle(),
      { timeout: LOAD, polling: 200 });
  }
  await page.keyboard.press('ArrowRight'); // back to the first
  report.carousel = { views: n, ms: Date.now() - started, placeholders: await settle('carousel') };
  await page.screenshot({ path: join(out, 'carousel.png') });

  // The spin: drag turns it, the arrow keys step it, every frame loads.
  started = Date.now();
  await page.goto(`${base}${spinLink}`, { waitUntil: 'domcontentloaded', timeout: LOAD });
  const frames = Number(await page.getAttribute('html', 'data-frames'));
  if (!(frames >= 8)) throw new Error(`the spin has ${frames} frames`);
  const loadedFrame = () => page.waitForFunction(() => !document.getElementById('c').classList.contains('pending'),
    null, { timeout: LOAD, polling: 100 });
  await loadedFrame();
  const view = () => page.getAttribute('html', 'data-view');
  await page.focus('#c');
  const first = await view();
  const c = await page.locator('#c').boundingBox();
  await page.mouse.move(c.x + c.width * 0.3, c.y + c.height / 2);
  await page.mouse.down();
  await page.mouse.move(c.x + c.width * 0.55, c.y + c.height / 2, { steps: 8 });
  await page.mouse.up();
  const dragged = await view();
  if (dragged === first) throw new Error(`a drag did not turn the spin (still ${first})`);
  await page.keyboard.press('ArrowLeft');
  if ((await view()) === dragged) throw new Error('ArrowLeft did not turn the spin');
  const seen = new Set();
  for (let k = 0; k < frames; k++) {
    await page.keyboard.press('ArrowRight');
    await loadedFrame();
    const shown = await page.evaluate(() => {
      const f = document.querySelector('.f.on img');
      return f && f.complete && f.naturalWidth > 0 ? f.dataset.view : null;
    });
    if (shown !== (await view())) throw new Error(`frame ${await view()} is not the one shown (${shown})`);
    seen.add(shown);
  }
  const loaded = Number(await page.getAttribute('html', 'data-loaded'));
  if (seen.size !== frames || loaded !== frames) throw new Error(`${seen.size} frames shown, ${loaded} loaded, of ${frames}`);
  for (let k = 0; k < 3; k++) await page.keyboard.press('ArrowRight');
  await loadedFrame();
  report.spin = { frames, loaded, first, dragged, ms: Date.now() - started, placeholders: await settle('spin') };
  await page.screenshot({ path: join(out, 'spin.png') });
  await context.close();
} catch (e) {
  if (!(e instanceof Done)) errors.push(e.message);
} finally {
  await browser.close();
}
if (errors.length) {
  console.error(errors.join('\n'));
  process.exit(1);
}
console.log(JSON.stringify(report));
