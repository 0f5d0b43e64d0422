import type { HttpApp } from '../../../platform/http/types.ts';

/**
 * A game provider's wallet protocol (Hub88's, and later others) is a plug-in: it
 * translates the provider's calls into the wallet's bets, wins and rollbacks and
 * never touches the ledger directly.
 */
export interface GameProvider {
  readonly name: string;
  routes(app: HttpApp): Promise<void>;
}
