import type { Migration } from '../../platform/db/migrate.ts';

export const migrations: Migration[] = [
  {
    name: '0001_oidc',
    sql: `
      create schema identity;

      -- The OpenID Connect provider's state (sessions, interactions, grants, codes, refresh
      -- and opaque access tokens), one row per object, as its adapter interface wants.
      create table identity.oidc_payloads (
        model text not null,
        id text not null,
        payload jsonb not null,
        grant_id text,
        uid text,
        user_code text,
        expires_at timestamptz,
        consumed_at timestamptz,
        primary key (model, id)
      );
      create index oidc_payloads_grant on identity.oidc_payloads (grant_id) where grant_id is not null;
      create index oidc_payloads_uid on identity.oidc_payloads (uid) where uid is not null;
      create index oidc_payloads_user_code on identity.oidc_payloads (user_code) where user_code is not null;
      create index oidc_payloads_expiry on identity.oidc_payloads (expires_at) where expires_at is not null;

      -- Registered OAuth2 clients. A confidential client's secret is kept as a SHA-256 hash
      -- (it is 256 random bits, so a slow hash adds nothing); a public client has none.
      create table identity.clients (
        id text primary key,
        name text not null,
        secret_hash text,
        token_endpoint_auth_method text not null
          check (token_endpoint_auth_method in ('client_secret_basic', 'client_secret_post', 'none')),
        grant_types jsonb not null,
        redirect_uris jsonb not null default '[]',
        post_logout_redirect_uris jsonb not null default '[]',
        scope text not null,
        status text not null default 'active' check (status in ('active', 'disabled')),
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now(),
        constraint clients_public_have_no_secret check ((token_endpoint_auth_method = 'none') = (secret_hash is null))
      );

      -- Secrets the provider needs shared by every process (the cookie signing keys),
      -- generated on first start.
      create table identity.secrets (
        name text primary key,
        value text not null,
        created_at timestamptz not null default now()
      );
    `,
  },
  {
    name: '0002_totp',
    sql: `
      -- A player's TOTP second factor (RFC 6238): the secret (base32), when the player
      -- confirmed it with a first code (unconfirmed ones are not asked for at sign-in),
      -- and the last accepted time step (a code is never accepted twice).
      create table identity.totp_factors (
        account_id text primary key,
        secret text not null,
        confirmed_at timestamptz,
        last_step bigint,
        created_at timestamptz not null default now()
      );

      -- Single-use recovery codes, SHA-256 hashes of 80 random bits each.
      create table identity.recovery_codes (
        account_id text not null,
        code_hash text not null,
        used_at timestamptz,
        primary key (account_id, code_hash)
      );
    `,
  },
  {
    name: '0003_webauthn',
    sql: `
      -- WebAuthn credentials (passkeys and hardware security keys) of players, several per
      -- account. The credential id (base64url) is unique across all accounts: the same
      -- authenticator credential cannot be registered twice. The public key is the COSE
      -- key; the signature counter must grow with every use when the authenticator keeps one.
      create table identity.webauthn_credentials (
        account_id text not null,
        credential_id text not null,
        public_key bytea not null,
        counter bigint not null default 0 check (counter >= 0),
        transports jsonb not null default '[]',
        device_type text not null check (device_type in ('singleDevice', 'multiDevice')),
        backed_up boolean not null,
        aaguid text not null,
        name text not null,
        created_at timestamptz not null default now(),
        last_used_at timestamptz,
        primary key (account_id, credential_id)
      );
      create unique index webauthn_credentials_id on identity.webauthn_credentials (credential_id);

      -- Outstanding WebAuthn challenges, single use (deleted when used) and short-lived:
      -- a registration's is bound to the account (subject = account id), a sign-in's to the
      -- provider's interaction (subject = its uid) and to the account that passed the password.
      create table identity.webauthn_challenges (
        purpose text not null check (purpose in ('registration', 'authentication')),
        subject text not null,
        account_id text not null,
        challenge text not null,
        expires_at timestamptz not null,
        primary key (purpose, subject)
      );
      create index webauthn_challenges_expiry on identity.webauthn_challenges (expires_at);
    `,
  },
];
