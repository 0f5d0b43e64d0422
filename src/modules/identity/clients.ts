import { randomBytes, timingSafeEqual } from 'node:crypto';
import { hasPermission, type RequestContext } from '../../platform/auth/principal.ts';
import { tablesOf } from '../../platform/db/database.ts';
import { platformErrors, type FieldError } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import type { Kernel } from '../../platform/module.ts';
import { fail, fieldCodes } from './errors.ts';
import { API_SCOPE, DEFAULT_USER_SCOPE, OIDC_SCOPES, splitScope } from './scopes.ts';
import { findClient, insertClient, listClients, updateClient, withoutSecret, type ClientRecord, type ClientStatus, type IdentityTables } from './store.ts';
import { sha256Hex } from '../../platform/hash.ts';

export const PERMISSIONS = {
  readClients: 'identity.clients.read',
  manageClients: 'identity.clients.manage',
} as const;

export const GRANT_TYPES = ['authorization_code', 'refresh_token', 'client_credentials'] as const;
export type GrantType = (typeof GRANT_TYPES)[number];

export interface NewClient {
  name: string;
  grantTypes: readonly GrantType[];
  /** A public client (a browser or mobile app) has no secret; PKCE protects its codes. */
  public?: boolean;
  redirectUris?: readonly string[];
  postLogoutRedirectUris?: readonly string[];
  /** Space-separated. For client credentials, the permissions the service gets. */
  scope?: string;
  /** A staff client (the back office): its sign-in form takes staff emails, and staff only. */
  staff?: boolean;
}

export interface CreatedClient {
  client: ClientRecord;
  /** Shown once; only its hash is kept. */
  clientSecret?: string;
}

const SCOPE_TOKEN = /^[A-Za-z0-9_.:-]{1,100}$/;
const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Client secrets are 256 random bits: SHA-256 is as good as a slow hash for them. */
export const hashClientSecret = (secret: string): string => sha256Hex(secret);

export function clientSecretMatches(storedHash: string | undefined, presented: string): boolean {
  if (!storedHash) return false;
  const expected = Buffer.from(storedHash, 'hex');
  const actual = Buffer.from(hashClientSecret(presented), 'hex');
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** https anywhere, http only on the loopback interface, and a native app's private-use scheme (RFC 8252: reverse domain). */
function redirectUriProblem(uri: string): string | undefined {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return 'is not an absolute URI';
  }
  if (url.hash !== '' || uri.includes('#')) return 'must not contain a fragment';
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:') return LOOPBACK.has(url.hostname) ? undefined : 'must use https (http only for localhost)';
  if (/^[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+:$/.test(url.protocol)) return undefined;
  return 'must use https, http on localhost, or a reverse-domain private-use scheme';
}

/** The client registry: who may obtain tokens, for which grants, redirect URIs and scopes. */
export class ClientService {
  readonly #kernel: Kernel;

  constructor(kernel: Kernel) {
    this.#kernel = kernel;
  }

  get #db() {
    return tablesOf<IdentityTables>(this.#kernel.database.db);
  }

  validate(ctx: RequestContext, input: NewClient): { errors: FieldError[]; scope: string } {
    const errors: FieldError[] = [];
    const grants = new Set(input.grantTypes);
    const code = grants.has('authorization_code');
    const service = grants.has('client_credentials');
    if (grants.size === 0 || [...grants].some((g) => !(GRANT_TYPES as readonly string[]).includes(g))) {
      errors.push({ field: '/body/grantTypes', code: fieldCodes.GRANT_TYPES_INVALID, message: `Use one or more of ${GRANT_TYPES.join(', ')}.` });
    } else if (grants.has('refresh_token') && !code) {
      errors.push({ field: '/body/grantTypes', code: fieldCodes.GRANT_TYPES_INVALID, message: 'refresh_token comes with authorization_code.' });
    } else if (service && input.public) {
      errors.push({ field: '/body/grantTypes', code: fieldCodes.GRANT_TYPES_INVALID, message: 'A public client cannot use client_credentials: it has no secret.' });
    } else if (service && input.staff) {
      errors.push({ field: '/body/grantTypes', code: fieldCodes.GRANT_TYPES_INVALID, message: 'A staff client signs staff in: client_credentials has no staff member.' });
    }
    const redirects = input.redirectUris ?? [];
    if (code && redirects.length === 0) {
      errors.push({ field: '/body/redirectUris', code: fieldCodes.REDIRECT_URI_REQUIRED, message: 'An authorization_code client needs at least one redirect URI.' });
    }
    for (const [list, name] of [
      [redirects, 'redirectUris'],
      [input.postLogoutRedirectUris ?? [], 'postLogoutRedirectUris'],
    ] as const) {
      list.forEach((uri, i) => {
        const problem = redirectUriProblem(uri);
        if (problem) errors.push({ field: `/body/${name}/${i}`, code: fieldCodes.REDIRECT_URI_INVALID, message: `"${uri}" ${problem}.` });
      });
    }
    const scopes = input.scope === undefined ? (code ? splitScope(DEFAULT_USER_SCOPE) : []) : splitScope(input.scope);
    const bad = scopes.filter((s) => !SCOPE_TOKEN.test(s) || s.includes('*'));
    if (bad.length > 0) errors.push({ field: '/body/scope', code: fieldCodes.SCOPE_INVALID, message: `Invalid scope(s): ${bad.join(', ')} (no wildcards).` });
    if (service && !code) {
      const oidc = scopes.filter((s) => (OIDC_SCOPES as readonly string[]).includes(s));
      if (oidc.length > 0) errors.push({ field: '/body/scope', code: fieldCodes.SCOPE_INVALID, message: `A service has no user: ${oidc.join(', ')} does not apply.` });
      if (scopes.length === 0) errors.push({ field: '/body/scope', code: fieldCodes.SCOPE_REQUIRED, message: 'Name the permissions the service gets, e.g. "players.read".' });
    }
    return { errors, scope: scopes.join(' ') };
  }

  async create(ctx: RequestContext, input: NewClient): Promise<CreatedClient> {
    this.#require(ctx, PERMISSIONS.manageClients);
    const { errors, scope } = this.validate(ctx, input);
    if (errors.length > 0) throw platformErrors('VALIDATION_FAILED', { errors });
    if (input.grantTypes.includes('client_credentials')) {
      // A service's scopes are permissions at the API: nobody hands out more than they hold.
      const notHeld = splitScope(scope).filter((s) => s !== API_SCOPE && !hasPermission(ctx.principal, s));
      if (notHeld.length > 0) throw fail('CLIENT_SCOPE_NOT_HELD', { detail: `You do not hold: ${notHeld.join(', ')}.` });
    }
    const secret = input.public ? undefined : randomBytes(32).toString('base64url');
    const id = newId();
    const client = await this.#kernel.transaction(ctx, async (uow) => {
      const created = await insertClient(tablesOf<IdentityTables>(uow.trx), {
        id,
        name: input.name.trim(),
        secretHash: secret ? hashClientSecret(secret) : null,
        tokenEndpointAuthMethod: input.public ? 'none' : 'client_secret_basic',
        grantTypes: [...new Set(input.grantTypes)],
        redirectUris: input.redirectUris ?? [],
        postLogoutRedirectUris: input.postLogoutRedirectUris ?? [],
        scope,
        accountKind: input.staff ? 'staff' : 'player',
      });
      await uow.audit({
        action: 'identity.client.create',
        target: { type: 'oauth_client', id },
        changes: { name: created.name, grantTypes: created.grantTypes, redirectUris: created.redirectUris, scope, public: input.public === true, staff: input.staff === true },
      });
      return created;
    });
    return { client: withoutSecret(client), ...(secret ? { clientSecret: secret } : {}) };
  }

  /** Which accounts a client signs in (an unknown client: players). */
  async accountKindOf(clientId: string): Promise<'player' | 'staff'> {
    return (await findClient(this.#db, clientId))?.accountKind ?? 'player';
  }

  async get(ctx: RequestContext, id: string): Promise<ClientRecord> {
    this.#require(ctx, PERMISSIONS.readClients);
    const client = await findClient(this.#db, id);
    if (!client) throw fail('CLIENT_NOT_FOUND');
    return withoutSecret(client);
  }

  async list(ctx: RequestContext, page: { before?: string; limit: number }): Promise<ClientRecord[]> {
    this.#require(ctx, PERMISSIONS.readClients);
    return (await listClients(this.#db, page)).map(withoutSecret);
  }

  /** A disabled client obtains nothing more: its refresh tokens stop working at once, its access tokens expire within minutes. */
  async setStatus(ctx: RequestContext, id: string, status: ClientStatus): Promise<ClientRecord> {
    this.#require(ctx, PERMISSIONS.manageClients);
    return this.#kernel.transaction(ctx, async (uow) => {
      const db = tablesOf<IdentityTables>(uow.trx);
      const current = await findClient(db, id);
      if (!current) throw fail('CLIENT_NOT_FOUND');
      if (current.status === status) throw fail('CLIENT_STATUS_UNCHANGED');
      const updated = (await updateClient(db, id, { status }))!;
      await uow.audit({ action: 'identity.client.status.change', target: { type: 'oauth_client', id }, changes: { from: current.status, to: status } });
      return withoutSecret(updated);
    });
  }

  /** A new secret replaces the old one at once. */
  async rotateSecret(ctx: RequestContext, id: string): Promise<{ clientId: string; clientSecret: string }> {
    this.#require(ctx, PERMISSIONS.manageClients);
    const secret = randomBytes(32).toString('base64url');
    await this.#kernel.transaction(ctx, async (uow) => {
      const db = tablesOf<IdentityTables>(uow.trx);
      const current = await findClient(db, id);
      if (!current) throw fail('CLIENT_NOT_FOUND');
      if (current.tokenEndpointAuthMethod === 'none') throw fail('CLIENT_IS_PUBLIC');
      await updateClient(db, id, { secretHash: hashClientSecret(secret) });
      await uow.audit({ action: 'identity.client.secret.rotate', target: { type: 'oauth_client', id } });
    });
    return { clientId: id, clientSecret: secret };
  }

  #require(ctx: RequestContext, permission: string): void {
    if (hasPermission(ctx.principal, permission)) return;
    throw platformErrors(ctx.principal.kind === 'anonymous' ? 'UNAUTHENTICATED' : 'FORBIDDEN', { detail: `Requires the permission "${permission}".` });
  }
}
