import type { Kysely, Transaction } from 'kysely';

export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'none';
export type ClientStatus = 'active' | 'disabled';

export interface ClientTable {
  id: string;
  name: string;
  secret_hash: string | null;
  token_endpoint_auth_method: ClientAuthMethod;
  grant_types: string[] | string;
  redirect_uris: string[] | string;
  post_logout_redirect_uris: string[] | string;
  scope: string;
  status: ClientStatus;
  created_at: Date;
  updated_at: Date;
  account_kind: 'player' | 'staff';
}

export interface OidcPayloadTable {
  model: string;
  id: string;
  payload: Record<string, unknown> | string;
  grant_id: string | null;
  uid: string | null;
  user_code: string | null;
  expires_at: Date | null;
  consumed_at: Date | null;
}

/** Why a sign-in session ended. */
export type SessionEndReason =
  | 'signed_out'
  | 'revoked'
  | 'revoked_all'
  | 'revoked_by_staff'
  | 'password_changed'
  | 'password_reset'
  | 'idle_timeout'
  | 'absolute_timeout';

export interface SessionTable {
  id: string;
  account_id: string;
  client_ids: string[] | string;
  grant_ids: string[] | string;
  user_agent: string | null;
  device: string | null;
  source_ip: string | null;
  acr: string | null;
  amr: string[] | string;
  signed_in_at: Date;
  created_at: Date;
  last_used_at: Date;
  ended_at: Date | null;
  end_reason: SessionEndReason | null;
}

export interface PasswordResetTable {
  token_hash: string;
  account_id: string;
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
  /** Set when a newer request replaced it. */
  superseded_at: Date | null;
}

export type IdentityTables = {
  'identity.clients': ClientTable;
  'identity.oidc_payloads': OidcPayloadTable;
  'identity.secrets': { name: string; value: string; created_at: Date };
  'identity.totp_factors': { account_id: string; secret: string; confirmed_at: Date | null; last_step: number | string | null; created_at: Date };
  'identity.recovery_codes': { account_id: string; code_hash: string; used_at: Date | null };
  'identity.sessions': SessionTable;
  'identity.password_resets': PasswordResetTable;
  'identity.webauthn_credentials': WebAuthnCredentialTable;
  'identity.webauthn_challenges': WebAuthnChallengeTable;
  'identity.sms_factors': { account_id: string; phone: string; confirmed_at: Date | null; created_at: Date };
  'identity.sms_codes': { account_id: string; purpose: 'enrol' | 'sign_in'; phone: string; code_hash: string; salt: string; attempts: number; sent_at: Date; expires_at: Date };
  'identity.mfa_policies': { account_id: string; required_by_player: boolean; required_by_staff: boolean; updated_at: Date };
  'identity.email_verification_requests': { player_id: string; reason: 'registration' | 'email_changed'; created_at: Date; claimed_at: Date | null };
  'identity.email_verifications': { token_hash: string; player_id: string; email: string; created_at: Date; expires_at: Date; used_at: Date | null };
};

export interface WebAuthnCredentialTable {
  account_id: string;
  /** base64url, as the browser reports it. */
  credential_id: string;
  /** The COSE public key. */
  public_key: Uint8Array;
  counter: number | string | bigint;
  transports: string[] | string;
  device_type: 'singleDevice' | 'multiDevice';
  backed_up: boolean;
  aaguid: string;
  name: string;
  created_at: Date;
  last_used_at: Date | null;
}

export interface WebAuthnChallengeTable {
  purpose: 'registration' | 'authentication';
  /** The account (registration) or the provider's interaction uid (sign-in). */
  subject: string;
  account_id: string;
  challenge: string;
  expires_at: Date;
}

type Executor = Kysely<IdentityTables> | Transaction<IdentityTables>;

/** A registered client as the rest of the system sees it: never its secret. */
export interface ClientRecord {
  clientId: string;
  name: string;
  /** `none` for a public client (a browser or mobile app), which has no secret and must use PKCE. */
  tokenEndpointAuthMethod: ClientAuthMethod;
  grantTypes: string[];
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  scope: string;
  status: ClientStatus;
  /** `staff`: a back-office client, whose sign-in form takes staff (with mandatory MFA) only. */
  accountKind: 'player' | 'staff';
  createdAt: string;
  updatedAt: string;
}

/** What the OpenID Connect provider needs of a client, the secret hash included. */
export interface ClientCredentialsRecord extends ClientRecord {
  secretHash: string | null;
}

/** A JSON list column as the driver hands it over: parsed already, or as text. */
export const jsonList = (value: string[] | string): string[] => (typeof value === 'string' ? (JSON.parse(value) as string[]) : value);

function toRecord(row: ClientTable): ClientCredentialsRecord {
  return {
    clientId: row.id,
    name: row.name,
    tokenEndpointAuthMethod: row.token_endpoint_auth_method,
    grantTypes: jsonList(row.grant_types),
    redirectUris: jsonList(row.redirect_uris),
    postLogoutRedirectUris: jsonList(row.post_logout_redirect_uris),
    scope: row.scope,
    status: row.status,
    secretHash: row.secret_hash,
    accountKind: row.account_kind,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

export const withoutSecret = ({ secretHash: _secretHash, ...client }: ClientCredentialsRecord): ClientRecord => client;

export interface NewClientRow {
  id: string;
  name: string;
  secretHash: string | null;
  tokenEndpointAuthMethod: ClientAuthMethod;
  grantTypes: readonly string[];
  redirectUris: readonly string[];
  postLogoutRedirectUris: readonly string[];
  scope: string;
  accountKind?: 'player' | 'staff';
}

export async function insertClient(db: Executor, c: NewClientRow): Promise<ClientCredentialsRecord> {
  const now = new Date();
  const row = await db
    .insertInto('identity.clients')
    .values({
      id: c.id,
      name: c.name,
      secret_hash: c.secretHash,
      token_endpoint_auth_method: c.tokenEndpointAuthMethod,
      grant_types: JSON.stringify(c.grantTypes),
      redirect_uris: JSON.stringify(c.redirectUris),
      post_logout_redirect_uris: JSON.stringify(c.postLogoutRedirectUris),
      scope: c.scope,
      status: 'active',
      account_kind: c.accountKind ?? 'player',
      created_at: now,
      updated_at: now,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return toRecord(row);
}

export async function findClient(db: Executor, id: string): Promise<ClientCredentialsRecord | undefined> {
  const row = await db.selectFrom('identity.clients').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toRecord(row) : undefined;
}

export async function listClients(db: Executor, page: { before?: string; limit: number }): Promise<ClientCredentialsRecord[]> {
  let q = db.selectFrom('identity.clients').selectAll();
  if (page.before) q = q.where('id', '<', page.before);
  const rows = await q.orderBy('id', 'desc').limit(page.limit).execute();
  return rows.map(toRecord);
}

export async function updateClient(
  db: Executor,
  id: string,
  change: { status?: ClientStatus; secretHash?: string },
): Promise<ClientCredentialsRecord | undefined> {
  const row = await db
    .updateTable('identity.clients')
    .set({
      ...(change.status ? { status: change.status } : {}),
      ...(change.secretHash ? { secret_hash: change.secretHash } : {}),
      updated_at: new Date(),
    })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
  return row ? toRecord(row) : undefined;
}

/** A secret shared by every process, created by the first one that asks for it. */
export async function sharedSecret(db: Executor, name: string, create: () => string): Promise<string> {
  await db
    .insertInto('identity.secrets')
    .values({ name, value: create(), created_at: new Date() })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
  const row = await db.selectFrom('identity.secrets').select('value').where('name', '=', name).executeTakeFirstOrThrow();
  return row.value;
}
