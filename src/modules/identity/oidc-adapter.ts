import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import type { Kysely } from 'kysely';
import { API_SCOPE_METADATA, apiScopes, oidcScopes } from './scopes.ts';
import { findClient, type ClientCredentialsRecord, type IdentityTables } from './store.ts';

// The OpenID Connect provider's storage: its adapter interface over identity.oidc_payloads
// (this file is that table's repository), and the client registry for its Client model.

type Db = Kysely<IdentityTables>;

const parse = (payload: Record<string, unknown> | string): AdapterPayload =>
  (typeof payload === 'string' ? JSON.parse(payload) : payload) as AdapterPayload;

/** A registered client as the provider's client metadata; the secret is its hash (see compareClientSecret in provider.ts). */
export function clientMetadata(client: ClientCredentialsRecord): AdapterPayload {
  const code = client.grantTypes.includes('authorization_code');
  return {
    client_id: client.clientId,
    client_name: client.name,
    ...(client.secretHash ? { client_secret: client.secretHash } : {}),
    token_endpoint_auth_method: client.tokenEndpointAuthMethod,
    grant_types: client.grantTypes,
    response_types: code ? ['code'] : [],
    redirect_uris: client.redirectUris,
    post_logout_redirect_uris: client.postLogoutRedirectUris,
    // The provider polices OpenID Connect scopes with `scope` and the API's scopes through
    // the resource server (getResourceServerInfo reads API_SCOPE_METADATA).
    ...(oidcScopes(client.scope).length > 0 ? { scope: oidcScopes(client.scope).join(' ') } : {}),
    [API_SCOPE_METADATA]: apiScopes(client.scope).join(' '),
    id_token_signed_response_alg: 'ES256',
  };
}

class ClientAdapter implements Adapter {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  async find(id: string): Promise<AdapterPayload | undefined> {
    const client = await findClient(this.#db, id);
    return client?.status === 'active' ? clientMetadata(client) : undefined;
  }
  // Clients are managed through the registry (ClientService), never by the provider.
  async upsert(): Promise<void> {}
  async findByUserCode(): Promise<undefined> {}
  async findByUid(): Promise<undefined> {}
  async consume(): Promise<void> {}
  async destroy(): Promise<void> {}
  async revokeByGrantId(): Promise<void> {}
}

class PayloadAdapter implements Adapter {
  readonly #db: Db;
  readonly #model: string;

  constructor(db: Db, model: string) {
    this.#db = db;
    this.#model = model;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    const row = {
      payload: JSON.stringify(payload),
      grant_id: payload.grantId ?? null,
      uid: payload.uid ?? null,
      user_code: payload.userCode ?? null,
      expires_at: expiresIn ? new Date(Date.now() + expiresIn * 1000) : null,
    };
    await this.#db
      .insertInto('identity.oidc_payloads')
      .values({ model: this.#model, id, ...row, consumed_at: null })
      .onConflict((oc) => oc.columns(['model', 'id']).doUpdateSet(row))
      .execute();
  }

  async #findBy(column: 'id' | 'uid' | 'user_code', value: string): Promise<AdapterPayload | undefined> {
    const row = await this.#db
      .selectFrom('identity.oidc_payloads')
      .select(['payload', 'consumed_at'])
      .where('model', '=', this.#model)
      .where(column, '=', value)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', new Date())]))
      .executeTakeFirst();
    if (!row) return undefined;
    const payload = parse(row.payload);
    return row.consumed_at ? { ...payload, consumed: Math.floor(row.consumed_at.getTime() / 1000) } : payload;
  }

  find(id: string) {
    return this.#findBy('id', id);
  }

  findByUid(uid: string) {
    return this.#findBy('uid', uid);
  }

  findByUserCode(userCode: string) {
    return this.#findBy('user_code', userCode);
  }

  /**
   * Marks a code or refresh token used, once. The provider checks `consumed` before it
   * calls this, but two requests racing with the same token both pass that check: the
   * loser finds it already consumed here and is treated as a replay, which revokes
   * everything issued under the grant (the token's family) like any other reuse.
   */
  async consume(id: string): Promise<void> {
    const claimed = await this.#db
      .updateTable('identity.oidc_payloads')
      .set({ consumed_at: new Date() })
      .where('model', '=', this.#model)
      .where('id', '=', id)
      .where('consumed_at', 'is', null)
      .returning('grant_id')
      .executeTakeFirst();
    if (claimed) return;
    const row = await this.#db.selectFrom('identity.oidc_payloads').select('grant_id').where('model', '=', this.#model).where('id', '=', id).executeTakeFirst();
    if (row?.grant_id) await revokeGrant(this.#db, row.grant_id);
    throw new errors.InvalidGrant(`${this.#model} already used`);
  }

  async destroy(id: string): Promise<void> {
    await this.#db.deleteFrom('identity.oidc_payloads').where('model', '=', this.#model).where('id', '=', id).execute();
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await this.#db.deleteFrom('identity.oidc_payloads').where('model', '=', this.#model).where('grant_id', '=', grantId).execute();
  }
}

/** Everything issued under a grant, and the grant itself. */
async function revokeGrant(db: Db, grantId: string): Promise<void> {
  await db
    .deleteFrom('identity.oidc_payloads')
    .where((eb) => eb.or([eb('grant_id', '=', grantId), eb.and([eb('model', '=', 'Grant'), eb('id', '=', grantId)])]))
    .execute();
}

/** The provider's `adapter` option: one adapter per model. */
export const adapterFactory =
  (db: Db) =>
  (model: string): Adapter =>
    model === 'Client' ? new ClientAdapter(db) : new PayloadAdapter(db, model);

/** Deletes provider state past its expiry (housekeeping). */
export async function deleteExpiredPayloads(db: Db, now = new Date()): Promise<number> {
  const result = await db.deleteFrom('identity.oidc_payloads').where('expires_at', '<', now).executeTakeFirst();
  return Number(result.numDeletedRows);
}
