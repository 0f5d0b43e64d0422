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

      -- Verification emails to send (a new player's, or a changed address's, queued by the
      -- player.registered and player.email_changed consumer in its transaction and sent
      -- after it commits, by any process).
      create table identity.email_verification_requests (
        player_id text primary key,
        reason text not null check (reason in ('registration', 'email_changed')),
        created_at timestamptz not null default now(),
        claimed_at timestamptz
      );

      -- Which accounts a sign-in client serves: players (the default) or staff (the back office).
      alter table identity.clients add column account_kind text not null default 'player' check (account_kind in ('player', 'staff'));
    `,
  },
  {
    name: '0005_sessions_passwords',
    sql: `
      -- Sign-in sessions as the player sees them (devices): one row per provider session,
      -- keyed by its uid (the \`sid\` claim of access tokens). The clients and grants it
      -- started are listed so that ending it revokes their refresh tokens; an ended
      -- session keeps its row with when and why.
      create table identity.sessions (
        id text primary key,
        account_id text not null,
        client_ids jsonb not null default '[]',
        grant_ids jsonb not null default '[]',
        user_agent text,
        device text,
        source_ip text,
        acr text,
        amr jsonb not null default '[]',
        signed_in_at timestamptz not null,
        created_at timestamptz not null default now(),
        last_used_at timestamptz not null,
        ended_at timestamptz,
        end_reason text check (end_reason in ('signed_out', 'revoked', 'revoked_all', 'revoked_by_staff', 'password_changed', 'password_reset', 'idle_timeout', 'absolute_timeout')),
        constraint sessions_ended_with_reason check ((ended_at is null) = (end_reason is null))
      );
      create index sessions_account on identity.sessions (account_id, last_used_at desc);

      -- Tokens the provider stores that name their session (refresh tokens, codes).
      create index oidc_payloads_session on identity.oidc_payloads ((payload->>'sessionUid')) where payload->>'sessionUid' is not null;

      -- Password reset links: the token's SHA-256 (256 random bits: a slow hash adds
      -- nothing), single use, expiring; a newer request supersedes the older ones.
      create table identity.password_resets (
        token_hash text primary key,
        account_id text not null,
        created_at timestamptz not null default now(),
        expires_at timestamptz not null,
        used_at timestamptz,
        superseded_at timestamptz
      );
      create index password_resets_account on identity.password_resets (account_id, created_at desc);
    `,
  },
];
