import { backofficeModule } from '../modules/backoffice/index.ts';
import { identityModule } from '../modules/identity/index.ts';
import { playersModule } from '../modules/players/index.ts';
import { walletModule } from '../modules/wallet/index.ts';
import type { ModuleDefinition } from '../platform/module.ts';

/** Every module, in migration order. The composition root is the only place that lists them. */
export const allModules = [backofficeModule, playersModule, walletModule, identityModule] as const satisfies readonly ModuleDefinition[];

export type ModuleName = (typeof allModules)[number]['name'];
