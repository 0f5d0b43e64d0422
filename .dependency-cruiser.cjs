/**
 * Module boundaries (ARCHITECTURE.md section 2), enforced in `npm run lint`:
 * - the platform kernel knows no module and no application code;
 * - a module reaches another module only through that module's index.ts;
 * - nothing imports the CLI or the composition root except the CLI itself.
 */
module.exports = {
  forbidden: [
    {
      name: 'platform-knows-no-module',
      comment: 'src/platform is the kernel every module uses; it must not depend on any module or on the app.',
      severity: 'error',
      from: { path: '^src/platform/' },
      to: { path: '^src/(modules|app|cli)/' },
    },
    {
      name: 'module-internals-are-private',
      comment: "A module may import another module only through its public index.ts.",
      severity: 'error',
      from: { path: '^src/modules/([^/]+)/' },
      to: { path: '^src/modules/([^/]+)/', pathNot: ['^src/modules/$1/', '^src/modules/[^/]+/index\\.ts$'] },
    },
    {
      name: 'modules-do-not-import-the-app',
      severity: 'error',
      from: { path: '^src/modules/' },
      to: { path: '^src/(app|cli)/' },
    },
    {
      name: 'app-uses-module-entry-points',
      comment: 'The composition root and the CLI use modules through their index.ts only.',
      severity: 'error',
      from: { path: '^src/(app|cli)/' },
      to: { path: '^src/modules/[^/]+/', pathNot: '^src/modules/[^/]+/index\\.ts$' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true, dependencyTypesNot: ['type-only'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^node_modules|\\.test\\.ts$)' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
