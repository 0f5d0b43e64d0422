import type { Migration } from '../../platform/db/migrate.ts';

export const migrations: Migration[] = [
  {
    name: '0001_players',
    sql: `
      create schema players;
      create table players.players (
        id uuid primary key,
        email text not null,
        email_normalized text not null,
        login text not null,
        login_normalized text not null,
        password_hash text not null,
        country char(2) not null,
        currency char(3) not null,
        date_of_birth date not null,
        status text not null default 'active'
          check (status in ('active', 'blocked', 'suspended', 'suspended_may_withdraw', 'self_excluded', 'closed')),
        affiliate_id text,
        traffic_source jsonb not null default '{}',
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now(),
        constraint players_email_unique unique (email_normalized),
        constraint players_login_unique unique (login_normalized)
      );
      create index players_country on players.players (country, id);
      create index players_affiliate on players.players (affiliate_id, id) where affiliate_id is not null;
      create index players_status on players.players (status, id);
    `,
  },
  {
    name: '0002_email_verified',
    sql: `
      -- When the player proved they read mail at their current address (the identity
      -- module's verification link); null until then.
      alter table players.players add column email_verified_at timestamptz;
    `,
  },
];
