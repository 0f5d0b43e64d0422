import type { Kernel } from '../../../platform/module.ts';
import type { WalletService } from '../service.ts';
import { hub88Provider } from './hub88/index.ts';
import type { GameProvider } from './provider.ts';

export type { GameProvider } from './provider.ts';

/** Every game provider protocol this deployment serves. */
export function gameProviders(kernel: Kernel, wallet: WalletService): GameProvider[] {
  return [hub88Provider(kernel, wallet)];
}
