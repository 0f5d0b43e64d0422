import type { Migration } from '../../platform/db/migrate.ts';

export const migrations: Migration[] = [
  {
    name: '0001_ledger',
    sql: `
      create schema wallet;

      -- Wallet types are data: a new kind of player wallet is a row, not a release.
      create table wallet.wallet_types (
        name text primary key,
        description text not null,
        -- Order in which a bet spends this wallet (lower first); null: bets never spend it.
        bet_priority integer
      );
      insert into wallet.wallet_types (name, description, bet_priority) values
        ('real', 'Real money: deposits, wins on real stakes, withdrawals.', 1),
        ('bonus', 'Bonus money: wagered before it converts to real money.', 2),
        ('freespins', 'Free-spin value granted by bonuses.', null),
        ('tournament', 'Tournament prizes and entries.', null);

      -- Accounts: a player's wallet in one currency (kind player), or an operator account
      -- (kind house: game providers, payment clearing, fees, adjustments, pending
      -- withdrawals), sharded by holder so that no single row serialises every bet.
      create table wallet.accounts (
        holder uuid not null,
        name text not null,
        currency char(3) not null,
        kind text not null check (kind in ('player', 'house')),
        balance bigint not null default 0,
        last_seq bigint not null default 0,
        last_hash text not null default '${'0'.repeat(64)}',
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now(),
        primary key (holder, name, currency),
        -- The database, not only the code, keeps player money from going negative.
        constraint player_balance_not_negative check (kind <> 'player' or balance >= 0)
      );

      -- Immutable, hash-chained per account; corrections are new reversing transactions.
      create table wallet.postings (
        holder uuid not null,
        name text not null,
        currency char(3) not null,
        seq bigint not null,
        transaction_id uuid not null,
        player_id uuid not null,
        amount bigint not null,
        balance_after bigint not null,
        created_at timestamptz not null,
        prev_hash text not null,
        hash text not null,
        primary key (holder, name, currency, seq)
      );
      create index postings_transaction on wallet.postings (player_id, transaction_id);

      create table wallet.transactions (
        player_id uuid not null,
        id uuid not null,
        type text not null,
        currency char(3) not null,
        amount bigint not null,
        -- What each player wallet gained or lost, e.g. {"real":"-500","bonus":"-250"}.
        split jsonb not null default '{}',
        round_id text,
        provider text,
        external_ref text,
        reference_id uuid,
        idempotency_scope text,
        idempotency_key text,
        meta jsonb not null default '{}',
        created_at timestamptz not null,
        primary key (player_id, id)
      );
      create unique index transactions_external_ref on wallet.transactions (player_id, provider, external_ref) where external_ref is not null;
      create index transactions_round on wallet.transactions (player_id, round_id) where round_id is not null;
      create index transactions_type on wallet.transactions (player_id, type, id);

      -- Every money-moving request's key and its first answer; a replay gets that answer.
      create table wallet.idempotency (
        scope text not null,
        key text not null,
        request_hash text not null,
        player_id uuid,
        outcome jsonb,
        created_at timestamptz not null default now(),
        primary key (scope, key)
      );
      create index idempotency_created on wallet.idempotency (created_at);

      create table wallet.ledger_checks (
        id bigint generated always as identity primary key,
        at timestamptz not null default now(),
        ok boolean not null,
        transactions bigint not null,
        postings bigint not null,
        accounts bigint not null,
        problems jsonb not null
      );

      -- The ledger and its checks are append-only.
      create trigger postings_append_only before update or delete on wallet.postings
        for each row execute function platform.refuse_change();
      create trigger transactions_append_only before update or delete on wallet.transactions
        for each row execute function platform.refuse_change();
    `,
  },
];

migrations.push({
  name: '0002_payments_adjustments_sessions',
  sql: `
    -- Deposits and withdrawals as the payment provider sees them; the ledger holds the money.
    create table wallet.payments (
      player_id uuid not null,
      id uuid not null,
      kind text not null check (kind in ('deposit', 'withdrawal')),
      provider text not null,
      currency char(3) not null,
      amount bigint not null check (amount > 0),
      status text not null check (status in ('pending', 'requested', 'approved', 'completed', 'failed', 'cancelled', 'rejected')),
      provider_ref text,
      reason text,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      primary key (player_id, id)
    );
    create unique index payments_id on wallet.payments (id);
    create index payments_status on wallet.payments (status, created_at);

    create table wallet.adjustments (
      player_id uuid not null,
      id uuid not null,
      wallet text not null,
      currency char(3) not null,
      amount bigint not null check (amount <> 0),
      reason text not null,
      status text not null check (status in ('pending_approval', 'applied', 'rejected')),
      requested_by text not null,
      approved_by text,
      transaction_id uuid,
      created_at timestamptz not null default now(),
      decided_at timestamptz,
      primary key (player_id, id)
    );
    create unique index adjustments_id on wallet.adjustments (id);

    create table wallet.game_sessions (
      token text primary key,
      player_id uuid not null,
      game_code text not null,
      currency char(3) not null,
      created_at timestamptz not null default now(),
      expires_at timestamptz not null
    );
    create index game_sessions_player on wallet.game_sessions (player_id);
  `,
});

migrations.push({
  name: '0003_ledger_no_truncate',
  sql: `
    -- Row triggers do not fire on TRUNCATE: without these the append-only ledger could be emptied in one statement.
    create trigger postings_no_truncate before truncate on wallet.postings
      for each statement execute function platform.refuse_change();
    create trigger transactions_no_truncate before truncate on wallet.transactions
      for each statement execute function platform.refuse_change();
  `,
});

migrations.push({
  name: '0004_lean_transaction_indexes',
  sql: `
    -- Every bet writes a transaction row: each index costs on the hot path. Listing a
    -- player's transactions by type walks the primary key (player_id, id) instead.
    drop index wallet.transactions_type;
  `,
});

migrations.push({
  name: '0005_batch_check',
  sql: `
    -- A ledger batch is one statement that checks its own assumptions (account sequences
    -- as planned, keys not answered before): this raises when one failed, undoing it all.
    create function wallet.batch_check(ok boolean) returns boolean language plpgsql as $$
    begin
      if not ok then
        raise exception 'WALLET_BATCH_STALE: an account moved or a key was answered since the batch was planned'
          using errcode = 'serialization_failure';
      end if;
      return true;
    end;
    $$;
  `,
});

migrations.push({
  name: '0006_player_side_postings_index',
  sql: `
    -- Every bet and win writes two postings: each index entry costs on the hot path
    -- (measured with bench:wallet-ab, see docs/wallet.md).
    -- A player's transaction listing reads the player's own postings (holder = player_id)
    -- of the transactions on its page; the house side of each transaction needs no entry
    -- (ledger verify reads the whole table). Keyed by the transaction id alone (UUIDv7, so
    -- each insert lands at the right edge), and queried without the player's id: with it,
    -- PostgreSQL turns holder = player_id into two comparisons with that id and can no
    -- longer prove the index's condition.
    create index postings_player_transaction on wallet.postings (transaction_id) where holder = player_id;
    drop index wallet.postings_transaction;
  `,
});

migrations.push({
  name: '0007_postings_without_prev_hash',
  sql: `
    -- A posting's previous hash is the hash of its account's posting seq - 1, which
    -- ledger verify reads anyway as it walks each chain in order: storing it again cost
    -- 65 bytes of every posting, in the table and in the WAL (two postings per bet or
    -- win). A removed posting now shows as a gap in seq, a changed one as a hash that
    -- its content and its predecessor's hash no longer give. Dropping a column rewrites
    -- nothing: old rows keep their bytes until they are rewritten.
    alter table wallet.postings drop column prev_hash;
  `,
});
