import { errors as joseErrors, jwtVerify, SignJWT, decodeProtectedHeader } from 'jose';
import { LRUCache } from 'lru-cache';
import { platformErrors } from '../errors.ts';
import { type KeyStore, SIGNING_ALG } from './keys.ts';
import type { Authentication, Principal } from './principal.ts';

export const ACCESS_TOKEN_AUDIENCE = 'pitboss';

export type TokenSubject =
  | { kind: 'player'; id: string; auth?: Authentication }
  | { kind: 'staff'; id: string; permissions: readonly string[] }
  | { kind: 'service'; id: string; permissions: readonly string[] };

/**
 * Short-lived JWT access tokens signed with the key store's current key. Verification
 * accepts ES256 only (no `none`, no HMAC confusion), `typ: at+jwt` only (an ID token or
 * logout token signed with the same key is not an access token), and checks issuer,
 * audience and lifetime with a small clock tolerance. Besides its own issuer it trusts
 * the configured OpenID Connect provider's, which signs with the same keys.
 */
const CLOCK_TOLERANCE_SECONDS = 5;

export class TokenService {
  readonly #keys: KeyStore;
  readonly #issuer: string;
  readonly #defaultTtl: number;
  readonly #issuers: string[];
  /**
   * Tokens verified lately, by their exact text, until they expire: a caller sends the
   * same token on every call, and the ES256 check (a WebCrypto job per request) was most
   * of a balance read's CPU. A hit still needs its signing key alive, so a revoked key
   * ends its tokens at once.
   */
  readonly #verified = new LRUCache<string, { principal: Principal; kid: string; expiresAtMs: number }>({ max: 10_000 });

  constructor(keys: KeyStore, issuer: string, defaultTtlSeconds: number, options: { trustedIssuers?: readonly string[] } = {}) {
    this.#keys = keys;
    this.#issuer = issuer;
    this.#defaultTtl = defaultTtlSeconds;
    this.#issuers = [...new Set([issuer, ...(options.trustedIssuers ?? [])])];
  }

  get keys(): KeyStore {
    return this.#keys;
  }

  async issue(subject: TokenSubject, ttlSeconds = this.#defaultTtl): Promise<{ token: string; expiresAt: Date }> {
    const key = await this.#keys.signingKey();
    const now = Math.floor(Date.now() / 1000);
    const claims: Record<string, unknown> = { kind: subject.kind };
    if (subject.kind !== 'player') claims.perm = [...subject.permissions];
    if (subject.kind === 'player' && subject.auth) {
      const { authTime, acr, amr, sid } = subject.auth;
      Object.assign(claims, { auth_time: authTime, acr, amr: amr ? [...amr] : undefined, sid });
    }
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: SIGNING_ALG, kid: key.kid, typ: 'at+jwt' })
      .setIssuer(this.#issuer)
      .setAudience(ACCESS_TOKEN_AUDIENCE)
      .setSubject(subject.id)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + ttlSeconds)
      .setJti(crypto.randomUUID())
      .sign(key.privateKey);
    return { token, expiresAt: new Date((now + ttlSeconds) * 1000) };
  }

  /** Verifies a bearer token into a principal; any defect is UNAUTHENTICATED. */
  async verify(token: string): Promise<Principal> {
    const hit = this.#verified.get(token);
    if (hit) {
      if (Date.now() < hit.expiresAtMs && (await this.#keys.publicKey(hit.kid))) return hit.principal;
      this.#verified.delete(token);
    }
    return this.#verifyAnew(token);
  }

  async #verifyAnew(token: string): Promise<Principal> {
    const unauthenticated = (detail: string) => platformErrors('UNAUTHENTICATED', { detail });
    let kid: string | undefined;
    try {
      const header = decodeProtectedHeader(token);
      if (header.alg !== SIGNING_ALG) throw unauthenticated(`Unsupported token algorithm ${String(header.alg)}.`);
      kid = header.kid;
    } catch (error) {
      if (error instanceof Error && error.name === 'DomainError') throw error;
      throw unauthenticated('The token is malformed.');
    }
    if (!kid) throw unauthenticated('The token has no key id.');
    const key = await this.#keys.publicKey(kid);
    if (!key) throw unauthenticated('The token was signed by an unknown or expired key.');
    try {
      const { payload } = await jwtVerify(token, key, {
        algorithms: [SIGNING_ALG],
        issuer: this.#issuers,
        audience: ACCESS_TOKEN_AUDIENCE,
        typ: 'at+jwt',
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ['sub', 'exp', 'iat'],
      });
      const sub = payload.sub!;
      const perms = Array.isArray(payload.perm) ? new Set(payload.perm.filter((p): p is string => typeof p === 'string')) : new Set<string>();
      const auth = authenticationOf(payload);
      let principal: Principal;
      switch (payload.kind) {
        case 'player':
          principal = { kind: 'player', id: sub, ...auth };
          break;
        case 'staff':
          principal = { kind: 'staff', id: sub, permissions: perms, ...auth };
          break;
        case 'service':
          principal = { kind: 'service', id: sub, permissions: perms, ...auth };
          break;
        default:
          throw unauthenticated('The token names no known principal kind.');
      }
      // As jwtVerify judges expiry: exp plus the same clock tolerance.
      this.#verified.set(token, { principal, kid, expiresAtMs: payload.exp! * 1000 + CLOCK_TOLERANCE_SECONDS * 1000 });
      return principal;
    } catch (error) {
      if (error instanceof Error && error.name === 'DomainError') throw error;
      if (error instanceof joseErrors.JWTExpired) throw unauthenticated('The token has expired.');
      if (error instanceof joseErrors.JWTClaimValidationFailed) throw unauthenticated(`The token's ${error.claim} claim is not valid.`);
      throw unauthenticated('The token signature is not valid.');
    }
  }
}

/** The authentication claims of a verified token; a claim of the wrong type is left out, never trusted. */
function authenticationOf(payload: Record<string, unknown>): Authentication {
  const auth: { -readonly [K in keyof Authentication]: Authentication[K] } = {};
  if (typeof payload.auth_time === 'number' && Number.isFinite(payload.auth_time)) auth.authTime = payload.auth_time;
  if (typeof payload.acr === 'string') auth.acr = payload.acr;
  if (Array.isArray(payload.amr)) auth.amr = payload.amr.filter((m): m is string => typeof m === 'string');
  if (typeof payload.sid === 'string' && payload.sid !== '') auth.sid = payload.sid;
  return auth;
}
