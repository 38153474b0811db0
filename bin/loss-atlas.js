#!/usr/bin/env node
// Entry point of the `loss-atlas` command: runs src/cli.ts in this process, with tsx's loader for TypeScript.
import { register } from 'tsx/esm/api';
register();
await import('../src/cli.ts');
