import { sha256Hex } from '../../platform/hash.ts';
import type { AccountKey } from './types.ts';

export const GENESIS = '0'.repeat(64);

/** sha256 over the previous hash and the posting's fields: one chain per account. */
export function postingHash(prev: string, account: AccountKey, seq: bigint, transactionId: string, amount: bigint, balanceAfter: bigint): string {
  return sha256Hex(`${prev}|${account.holder}|${account.name}|${account.currency}|${seq}|${transactionId}|${amount}|${balanceAfter}`);
}
