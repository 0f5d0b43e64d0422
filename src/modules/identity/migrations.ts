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
    name: '0004_sms_email_staff',
    sql: `
      -- A phone number as a second factor (SMS one-time codes); asked for at sign-in once
      -- confirmed with a first code. Players and staff share the id space (UUIDs).
      create table identity.sms_factors (
        account_id text primary key,
        phone text not null,
        confirmed_at timestamptz,
        created_at timestamptz not null default now()
      );

      -- The one live SMS code of an account per purpose ('enrol', 'sign_in'): an HMAC-SHA-256
      -- of the 6-digit code under a per-code salt, dead after expires_at or 5 wrong tries.
      create table identity.sms_codes (
        account_id text not null,
        purpose text not null check (purpose in ('enrol', 'sign_in')),
        phone text not null,
        code_hash text not null,
        salt text not null,
        attempts integer not null default 0,
        sent_at timestamptz not null,
        expires_at timestamptz not null,
        primary key (account_id, purpose)
      );

      -- Per-account MFA requirement: set by the player, or by staff (who may lift only their own).
      create table identity.mfa_policies (
        account_id text primary key,
        required_by_player boolean not null default false,
        required_by_staff boolean not null default false,
        updated_at timestamptz not null default now()
      );

      -- Email verification links: the SHA-256 of a 256-bit token, single use, expiring.
      create table identity.email_verifications (
        token_hash text primary key,
        player_id text not null,
        email text not null,
        created_at timestamptz not null default now(),
        expires_at timestamptz not null,
        used_at timestamptz
      );
      create index email_verifications_player on identity.email_verifications (player_id, created_at desc);

      -- Verification emails to send (a new player's, queued by the player.registered
      -- consumer in its transaction and sent after it commits, by any process).
      create table identity.email_verification_requests (
        player_id text primary key,
        reason text not null check (reason in ('registration')),
        created_at timestamptz not null default now(),
        claimed_at timestamptz
      );

      -- Which accounts a sign-in client serves: players (the default) or staff (the back office).
      alter table identity.clients add column account_kind text not null default 'player' check (account_kind in ('player', 'staff'));
    `,
  },
];
