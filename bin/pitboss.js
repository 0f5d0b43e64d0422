#!/usr/bin/env node
// The package bin: `npx pitboss <command>`. npm puts node_modules/.bin first on PATH,
// so this runs on the project's pinned Node 24, which strips TypeScript types itself.
import '../src/cli/main.ts';
