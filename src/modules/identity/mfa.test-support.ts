import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../../platform/db/database.ts';
import * as oidc from 'openid-client';
import { Browser, formAction, type Hop } from './browser.test-support.ts';

// Helpers of the SMS, policy and staff sign-in tests: RFC 6238 codes computed here
// (independently of otplib), the latest message of the local gateway, and a sign-in
// driven step by step through the hosted pages.

export function base32Decode(text: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const c of text.replace(/[\s=]+/g, '').toUpperCase()) {
    const index = alphabet.indexOf(c);
    assert.ok(index >= 0, `not base32: ${c}`);
    value = ((value << 5) | index) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** The RFC 6238 code of a time step (six digits unless told; the RFC's test vectors use eight). */
export function totpAt(key: Buffer, step: number, digits = 6): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 10 ** digits).padStart(digits, '0');
}

export const stepNow = (): number => Math.floor(Date.now() / 30_000);

/** The newest message the local gateway kept for a recipient. */
export async function latestMessage(db: Db, recipient: string): Promise<{ body: string; subject: string | null; purpose: string; account_id: string | null } | undefined> {
  const rows = await sql<{ body: string; subject: string | null; purpose: string; account_id: string | null }>`
    select body, subject, purpose, account_id from platform.local_messages where recipient = ${recipient} order by created_at desc, id desc limit 1`.execute(db);
  return rows.rows[0];
}

export async function countMessages(db: Db, recipient: string): Promise<number> {
  const rows = await sql<{ n: string }>`select count(*) as n from platform.local_messages where recipient = ${recipient}`.execute(db);
  return Number(rows.rows[0]!.n);
}

/** The 6-digit code in the newest SMS to a number. */
export async function smsCode(db: Db, phone: string): Promise<string> {
  const message = await latestMessage(db, phone);
  const code = message ? /\b(\d{6})\b/.exec(message.body)?.[1] : undefined;
  assert.ok(code, `no SMS code for ${phone}`);
  return code;
}

/** A sign-in through the hosted pages, one form at a time. */
export class SignIn {
  readonly browser = new Browser();
  readonly #config: oidc.Configuration;
  readonly #redirect: string;
  readonly #base: string;
  #verifier = '';
  action = '';

  constructor(config: oidc.Configuration, base: string, redirect: string) {
    this.#config = config;
    this.#base = base;
    this.#redirect = redirect;
  }

  /** Opens the authorization URL and fills in the password form; the page that answers. */
  async start(login: string, password: string, scope = 'openid api email'): Promise<Hop> {
    this.#verifier = oidc.randomPKCECodeVerifier();
    const url = oidc.buildAuthorizationUrl(this.#config, {
      redirect_uri: this.#redirect,
      scope,
      code_challenge: await oidc.calculatePKCECodeChallenge(this.#verifier),
      code_challenge_method: 'S256',
      // OpenID Connect grants offline_access (a refresh token) only with prompt=consent.
      ...(scope.includes('offline_access') ? { prompt: 'consent' } : {}),
    });
    const page = await this.browser.follow(url.href, this.#redirect);
    assert.equal(page.status, 200, page.body.slice(0, 300));
    this.action = new URL(formAction(page.body)!, this.#base).href;
    return this.browser.request(this.action, { form: { login, password } });
  }

  /** Posts a form of the current step. */
  post(form: Record<string, string>): Promise<Hop> {
    return this.browser.follow(this.action, this.#redirect, { form });
  }

  /** The tokens, when a step redirected back to the client. */
  async tokens(hop: Hop) {
    // A password-only sign-in answers with the provider's resume URL: follow it to the client.
    if (hop.location && !hop.location.startsWith(this.#redirect)) hop = await this.browser.follow(hop.location, this.#redirect);
    assert.ok(hop.location?.startsWith(this.#redirect), `expected a redirect to the client, got ${hop.status}\n${hop.body.slice(0, 400)}`);
    return oidc.authorizationCodeGrant(this.#config, new URL(hop.location!), { pkceCodeVerifier: this.#verifier });
  }
}
