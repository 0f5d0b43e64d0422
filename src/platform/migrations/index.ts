import type { MigrationSet } from '../db/migrate.ts';

export const platformMigrations: MigrationSet = {
  module: 'platform',
  migrations: [
    {
      name: '0001_outbox_inbox',
      sql: `
        create table platform.outbox (
          seq bigint generated always as identity primary key,
          id uuid not null unique,
          type text not null,
          version integer not null,
          occurred_at timestamptz not null,
          player_id uuid,
          payload jsonb not null,
          published_at timestamptz
        );
        create index outbox_unpublished on platform.outbox (seq) where published_at is null;

        create table platform.inbox (
          consumer text not null,
          event_id uuid not null,
          processed_at timestamptz not null default now(),
          primary key (consumer, event_id)
        );

        create table platform.dead_letters (
          id bigint generated always as identity primary key,
          consumer text not null,
          event_id uuid not null,
          event jsonb not null,
          error text not null,
          attempts integer not null,
          failed_at timestamptz not null default now()
        );
      `,
    },
    {
      name: '0002_signing_keys',
      sql: `
        create table platform.signing_keys (
          kid text primary key,
          alg text not null,
          public_jwk jsonb not null,
          private_jwk jsonb not null,
          created_at timestamptz not null default now(),
          retires_at timestamptz not null,
          expires_at timestamptz not null
        );
      `,
    },
    {
      name: '0003_audit_log',
      sql: `
        create table platform.audit_log (
          chain smallint not null,
          seq bigint not null,
          id uuid not null,
          at timestamptz not null,
          actor_type text not null,
          actor_id text,
          action text not null,
          target_type text not null,
          target_id text not null,
          changes jsonb not null,
          request_id text,
          source_ip text,
          prev_hash text not null,
          hash text not null,
          primary key (chain, seq)
        );
        create index audit_log_target on platform.audit_log (target_type, target_id, at);
        create index audit_log_at on platform.audit_log (at);

        create table platform.audit_chain_heads (
          chain smallint primary key,
          seq bigint not null,
          hash text not null
        );

        create table platform.audit_checkpoints (
          id bigint generated always as identity primary key,
          at timestamptz not null,
          heads jsonb not null,
          kid text not null,
          signature text not null
        );

        -- The audit log and its checkpoints are append-only: the database refuses to
        -- change or remove a row, whoever asks.
        create function platform.refuse_change() returns trigger language plpgsql as $$
        begin
          raise exception 'AUDIT_APPEND_ONLY: % on %.% is not allowed', tg_op, tg_table_schema, tg_table_name
            using errcode = 'insufficient_privilege';
        end;
        $$;
        create trigger audit_log_append_only before update or delete on platform.audit_log
          for each row execute function platform.refuse_change();
        create trigger audit_log_no_truncate before truncate on platform.audit_log
          for each statement execute function platform.refuse_change();
        create trigger audit_checkpoints_append_only before update or delete on platform.audit_checkpoints
          for each row execute function platform.refuse_change();
        create trigger audit_checkpoints_no_truncate before truncate on platform.audit_checkpoints
          for each statement execute function platform.refuse_change();
      `,
    },
    {
      name: '0004_local_messages',
      sql: `
        -- Messages the local gateway "sent" (SMS codes, email links): development and tests
        -- read them here instead of a phone or a mailbox.
        create table platform.local_messages (
          id uuid primary key,
          channel text not null check (channel in ('sms', 'email')),
          recipient text not null,
          subject text,
          body text not null,
          purpose text not null,
          account_id text,
          created_at timestamptz not null default now()
        );
        create index local_messages_recipient on platform.local_messages (recipient, created_at desc);
      `,
    },
    {
      name: '0005_inbox_retention',
      sql: `
        -- The housekeeping process forgets handled events past INBOX_RETENTION_DAYS.
        create index inbox_processed_at on platform.inbox (processed_at);
      `,
    },
    {
      name: '0006_outbox_id_brin',
      sql: `
        -- Every event used to take an entry in a unique B-tree on its id, and another each
        -- time the relay marked it published: a measurable share of PostgreSQL's work per
        -- call at wallet rates (an event per bet and per win; see docs/wallet.md). Event ids
        -- are UUIDv7, in about the order rows are appended, so a BRIN index (a min and max
        -- per 128 pages, almost free to keep) serves an operator who looks one up to publish
        -- it again. They are made by the writers, never taken from outside, so their
        -- uniqueness needs no index of its own.
        alter table platform.outbox drop constraint outbox_id_key;
        create index outbox_id on platform.outbox using brin (id);
      `,
    },
    {
      name: '0007_outbox_hot_marks',
      sql: `
        -- The relay's mark (published_at) was an update that PostgreSQL could not do in
        -- place (HOT), because the partial index of unpublished events names published_at:
        -- each mark wrote the whole row again plus a primary key entry, about a ninth of all
        -- the WAL under wallet load (pg_waldump, see docs/wallet.md). Without that index,
        -- and with half of each page left free for the marked versions, a mark is a HOT
        -- update on the row's own page. The relay reads from a floor below which every event
        -- is published, now kept here, by the primary key.
        -- No event may be written while the floor is first set: an open transaction could
        -- hold a seq below it.
        lock table platform.outbox in share mode;
        create table platform.outbox_relay (
          one boolean primary key default true check (one),
          floor bigint not null
        );
        insert into platform.outbox_relay (floor)
        select coalesce((select min(seq) from platform.outbox where published_at is null), (select max(seq) + 1 from platform.outbox), 0);
        drop index platform.outbox_unpublished;
        alter table platform.outbox set (fillfactor = 50);

        -- Publishes events again (an operator's tool): a copy of each, with the same id and
        -- a new seq, in their order. Consumers that handled an event already skip the copy
        -- (their inbox). The one-time filter takes the transaction's id before the first
        -- seq, as every outbox write must (see the relay's floor).
        create function platform.publish_again(ids uuid[]) returns integer language sql as $fn$
          with copied as (
            insert into platform.outbox (id, type, version, occurred_at, player_id, payload)
            select id, type, version, occurred_at, player_id, payload
            from (select distinct on (id) seq, id, type, version, occurred_at, player_id, payload from platform.outbox
                  where id = any(ids) order by id, seq desc) as latest
            where pg_current_xact_id() is not null
            order by seq
            returning 1
          )
          select count(*)::integer from copied;
        $fn$;
      `,
    },
  ],
};
