import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Real sockets and real client processes: keep files in separate workers
    // but don't oversubscribe a 2-core machine.
    maxWorkers: 2,
  },
});
