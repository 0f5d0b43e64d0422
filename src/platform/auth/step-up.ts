// What the platform needs to know about how a caller authenticated, without knowing the
// module that authenticates them (identity). The identity module registers two small
// hooks at start-up: whether a player has a second factor (so a step-up can ask for it),
// and whether a session has ended (so a revoked session's access tokens stop at once,
// not when they expire).

/** The `acr` of a sign-in with two factors (identity's ACR.mfa). */
export const ACR_2FA = 'urn:pitboss:acr:2fa';

export type SecondFactorCheck = (playerId: string) => Promise<boolean>;
export type SessionEndedCheck = (sessionId: string) => Promise<boolean>;

export class AuthPolicy {
  /** How old an authentication may be for an operation that needs a fresh one (STEP_UP_MAX_AGE_SECONDS). */
  readonly stepUpMaxAgeSeconds: number;
  readonly #factorChecks: SecondFactorCheck[] = [];
  #sessionEnded: SessionEndedCheck | undefined;

  constructor(options: { stepUpMaxAgeSeconds: number }) {
    this.stepUpMaxAgeSeconds = options.stepUpMaxAgeSeconds;
  }

  /** A module that keeps second factors adds its check (TOTP, passkeys, SMS: any one counts). */
  addSecondFactorCheck(check: SecondFactorCheck): void {
    this.#factorChecks.push(check);
  }

  async hasSecondFactor(playerId: string): Promise<boolean> {
    for (const check of this.#factorChecks) if (await check(playerId)) return true;
    return false;
  }

  /** The module that owns sign-in sessions answers whether one has ended (revoked, timed out, signed out). */
  setSessionEndedCheck(check: SessionEndedCheck): void {
    this.#sessionEnded = check;
  }

  async sessionEnded(sessionId: string): Promise<boolean> {
    return this.#sessionEnded ? this.#sessionEnded(sessionId) : false;
  }
}
