import { defineConfig } from 'vitest/config';

// Tests run on lavapipe (Vulkan on the CPU) when there is no GPU: one file at a time, in forked
// processes (Dawn is a native addon), with generous timeouts.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup-platform.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 120_000,
  },
});
