import type { Migration } from '../../platform/db/migrate.ts';

export const migrations: Migration[] = [
  {
    name: '0001_staff_roles',
    sql: `
      create schema backoffice;
      create table backoffice.staff (
        id uuid primary key,
        email text not null,
        display_name text not null,
        status text not null default 'active' check (status in ('active', 'disabled')),
        created_at timestamptz not null default now(),
        constraint staff_email_unique unique (email)
      );
      create table backoffice.roles (
        name text primary key,
        description text not null
      );
      create table backoffice.role_permissions (
        role text not null references backoffice.roles (name) on delete cascade,
        permission text not null,
        primary key (role, permission)
      );
      create table backoffice.staff_roles (
        staff_id uuid not null references backoffice.staff (id) on delete cascade,
        role text not null references backoffice.roles (name),
        primary key (staff_id, role)
      );
      insert into backoffice.roles (name, description) values
        ('admin', 'Every permission, including staff and role management.'),
        ('support', 'Player support: sees players with personal data masked.'),
        ('compliance', 'Compliance officer: players with personal data, audit log, status changes.'),
        ('marketing', 'Segments and campaigns: players with personal data masked.');
      insert into backoffice.role_permissions (role, permission) values
        ('admin', '*'),
        ('support', 'players.read'),
        ('compliance', 'players.read'), ('compliance', 'pii.read'), ('compliance', 'players.manage'), ('compliance', 'audit.read'),
        ('marketing', 'players.read');
    `,
  },
  {
    name: '0002_session_permissions',
    sql: `
      -- Support sees a player's sessions (masked addresses) and signs them out (account
      -- takeover); compliance sees them with addresses.
      insert into backoffice.role_permissions (role, permission) values
        ('support', 'identity.sessions.read'), ('support', 'identity.sessions.manage'),
        ('compliance', 'identity.sessions.read')
      on conflict do nothing;
    `,
  },
  {
    name: '0003_staff_passwords',
    sql: `
      -- Staff sign in through the OpenID Connect provider: an argon2id hash (the players'
      -- parameters and policy), null until one is set (pitboss admin create / set-password).
      alter table backoffice.staff add column password_hash text;
    `,
  },
];
