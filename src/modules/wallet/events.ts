import { Type, type Static } from 'typebox';
import type { EventCatalogue } from '../../platform/events/types.ts';

// Every money movement leaves an event with the player's balances after it.

const Balances = Type.Record(Type.String(), Type.String({ description: 'Minor units as a decimal string.' }), { description: 'Balances after, by wallet, in minor units.' });

const Movement = Type.Object({
  transactionId: Type.String({ format: 'uuid' }),
  playerId: Type.String({ format: 'uuid' }),
  currency: Type.String(),
  amount: Type.String({ description: 'Minor units.' }),
  split: Type.Record(Type.String(), Type.String(), { description: 'Change per wallet, minor units, signed.' }),
  balances: Balances,
  roundId: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  provider: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  reference: Type.Optional(Type.Union([Type.String(), Type.Null()])),
});
export type Movement = Static<typeof Movement>;

const types = {
  'wallet.deposit.completed': 'A deposit settled and was credited.',
  'wallet.withdrawal.requested': 'A withdrawal was requested; its amount is reserved.',
  'wallet.withdrawal.settled': 'A withdrawal was paid out by the payment provider.',
  'wallet.withdrawal.cancelled': 'A withdrawal was cancelled or rejected; the reserved amount returned.',
  'wallet.bet.placed': 'A bet was debited.',
  'wallet.win.credited': 'A win was credited.',
  'wallet.bet.rolled_back': 'A bet was rolled back and refunded.',
  'wallet.fee.charged': 'A fee or commission was written off.',
  'wallet.transfer.completed': "Money moved between a player's wallets.",
  'wallet.adjustment.applied': 'Staff adjusted a balance.',
} as const;

export type WalletEventType = keyof typeof types;

declare module '../../platform/events/types.ts' {
  interface EventMap {
    'wallet.deposit.completed': Movement;
    'wallet.withdrawal.requested': Movement;
    'wallet.withdrawal.settled': Movement;
    'wallet.withdrawal.cancelled': Movement;
    'wallet.bet.placed': Movement;
    'wallet.win.credited': Movement;
    'wallet.bet.rolled_back': Movement;
    'wallet.fee.charged': Movement;
    'wallet.transfer.completed': Movement;
    'wallet.adjustment.applied': Movement;
  }
}

export const events: EventCatalogue = Object.fromEntries(
  Object.entries(types).map(([type, description]) => [type, { version: 1, description, payload: Movement }]),
);
