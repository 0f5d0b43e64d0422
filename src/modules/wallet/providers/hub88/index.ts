import type { Kernel } from '../../../../platform/module.ts';
import type { WalletService } from '../../service.ts';
import type { GameProvider } from '../provider.ts';
import { hub88Routes } from './routes.ts';
import { Hub88Wallet, PROVIDER } from './service.ts';
import { loadPublicKey } from './signature.ts';

export { signHub88, SIGNATURE_HEADER } from './signature.ts';
export { hub88ToMinor, minorToHub88, type Hub88Status } from './protocol.ts';
export { hub88Call, hub88Request, type Hub88Client, type Hub88Path } from './client.ts';

/**
 * Hub88's seamless wallet (Operator API, Wallet API): POST /providers/hub88/user/info,
 * user/balance, transaction/bet, transaction/win and transaction/rollback. The public
 * key is parsed once here; an invalid HUB88_PUBLIC_KEY stops the start-up.
 */
export function hub88Provider(kernel: Kernel, wallet: WalletService): GameProvider {
  const key = loadPublicKey(kernel.config.hub88PublicKey);
  if (!key) kernel.logger.info('HUB88_PUBLIC_KEY is not set: the Hub88 wallet endpoints refuse every call (RS_ERROR_INVALID_SIGNATURE)');
  return { name: PROVIDER, routes: hub88Routes(kernel, new Hub88Wallet(wallet), key) };
}
