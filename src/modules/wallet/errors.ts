import { defineErrors } from '../../platform/errors.ts';

export const fail = defineErrors({
  INSUFFICIENT_FUNDS: { status: 409, message: 'The balance is too low for this operation.' },
  LEDGER_REFUSED: { status: 409, message: 'The ledger refused the operation; `detail` names why.' },
  IDEMPOTENCY_KEY_REQUIRED: { status: 400, message: 'Money-moving requests need an Idempotency-Key header.' },
  IDEMPOTENCY_KEY_REUSED: { status: 422, message: 'This idempotency key was already used with a different request.' },
  WALLET_UNKNOWN: { status: 400, message: 'No such wallet type.' },
  CURRENCY_MISMATCH: { status: 400, message: "The currency is not the player's currency." },
  AMOUNT_INVALID: { status: 400, message: 'The amount is not a valid positive amount in this currency.' },
  PLAYER_BLOCKED: { status: 403, message: 'The player may not do this in their current status.' },
  PLAYER_NOT_FOUND: { status: 404, message: 'No such player.' },
  TRANSACTION_NOT_FOUND: { status: 404, message: 'No such transaction.' },
  TRANSACTION_ROLLED_BACK: { status: 409, message: 'The transaction was rolled back before it arrived and is refused.' },
  PAYMENT_NOT_FOUND: { status: 404, message: 'No such payment.' },
  PAYMENT_STATE_INVALID: { status: 409, message: 'The payment is not in a state that allows this.' },
  ADJUSTMENT_NOT_FOUND: { status: 404, message: 'No such adjustment.' },
  ADJUSTMENT_SELF_APPROVAL: { status: 403, message: 'A second staff member must approve this adjustment.' },
  ADJUSTMENT_STATE_INVALID: { status: 409, message: 'The adjustment is not pending approval.' },
  SIGNATURE_INVALID: { status: 401, message: 'The request signature does not verify.' },
  GAME_SESSION_INVALID: { status: 401, message: 'Unknown game session token.' },
  GAME_SESSION_EXPIRED: { status: 401, message: 'The game session has expired.' },
});

/** Ledger outcome codes that map to catalogue errors at the REST edge. */
export type WalletErrorCode = keyof typeof fail.catalogue;
