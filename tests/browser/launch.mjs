// The headless Chromium every browser check drives: Debian's chromium
// (CHROMIUM overrides the path), with the flags this sandbox needs (no
// sandbox, no GPU, no background network traffic to hosts it cannot reach).
import { chromium } from 'playwright-core';

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    timeout: 60_000,
  });
}
