import { defineConfig } from '@playwright/test';

// Debian's Chromium; hearthd is started by the test itself (e2e/hearthd.ts).
export default defineConfig({
  testDir: 'e2e',
  timeout: 60_000,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  use: {
    launchOptions: { executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium' },
    trace: 'off',
  },
});
