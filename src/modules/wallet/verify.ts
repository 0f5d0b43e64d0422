import { sql } from 'kysely';
import type { Db } from '../../platform/db/database.ts';
import { GENESIS, postingHash } from './hash.ts';

export interface LedgerProblem {
  check: 'balanced' | 'balance' | 'chain' | 'negative' | 'currency_sum' | 'postings';
  detail: string;
}

export interface LedgerReport {
  ok: boolean;
  transactions: number;
  postings: number;
  accounts: number;
  problems: LedgerProblem[];
  seconds: number;
}

const PAGE = 5000;

/**
 * The ledger's consistency control: every transaction balances per currency, every
 * account's balance equals the sum of its postings (and its sequence has no gap),
 * every account's hash chain is intact, no player balance is negative, and each
 * currency sums to zero across all accounts.
 */
export async function verifyLedger(db: Db): Promise<LedgerReport> {
  const started = performance.now();
  const problems: LedgerProblem[] = [];
  const q = <T>(text: ReturnType<typeof sql<T>>) => text.execute(db).then((r) => r.rows);

  for (const r of await q<{ transaction_id: string; currency: string; total: bigint }>(sql`
    select transaction_id, currency, sum(amount)::int8 as total from wallet.postings group by transaction_id, currency having sum(amount) <> 0 limit 100`)) {
    problems.push({ check: 'balanced', detail: `transaction ${r.transaction_id}: ${r.currency.trim()} postings sum to ${r.total}` });
  }
  for (const r of await q<{ id: string; amount: bigint }>(sql`
    select t.id, t.amount from wallet.transactions t
    where t.amount <> 0 and not exists (select 1 from wallet.postings p where p.player_id = t.player_id and p.transaction_id = t.id) limit 100`)) {
    problems.push({ check: 'postings', detail: `transaction ${r.id} moves ${r.amount} but has no postings` });
  }
  for (const r of await q<{ holder: string; name: string; currency: string; balance: bigint; total: bigint; last_seq: bigint; n: bigint; max_seq: bigint }>(sql`
    select a.holder, a.name, a.currency, a.balance, a.last_seq,
           coalesce(p.total, 0)::int8 as total, coalesce(p.n, 0)::int8 as n, coalesce(p.max_seq, 0)::int8 as max_seq
    from wallet.accounts a
    left join (select holder, name, currency, sum(amount) as total, count(*) as n, max(seq) as max_seq from wallet.postings group by holder, name, currency) p
      using (holder, name, currency)
    where a.balance <> coalesce(p.total, 0) or a.last_seq <> coalesce(p.max_seq, 0) or coalesce(p.n, 0) <> coalesce(p.max_seq, 0)
    limit 100`)) {
    problems.push({
      check: 'balance',
      detail: `account ${r.holder}/${r.name}/${r.currency.trim()}: balance ${r.balance}, postings sum ${r.total}; last seq ${r.last_seq}, ${r.n} postings up to seq ${r.max_seq}`,
    });
  }
  for (const r of await q<{ holder: string; name: string; currency: string; balance: bigint }>(sql`
    select holder, name, currency, balance from wallet.accounts where kind = 'player' and balance < 0 limit 100`)) {
    problems.push({ check: 'negative', detail: `player account ${r.holder}/${r.name}/${r.currency.trim()} is negative: ${r.balance}` });
  }
  for (const r of await q<{ currency: string; total: bigint }>(sql`select currency, sum(balance)::int8 as total from wallet.accounts group by currency having sum(balance) <> 0`)) {
    problems.push({ check: 'currency_sum', detail: `${r.currency.trim()} accounts sum to ${r.total}, not zero` });
  }

  // Hash chains: walk every account's postings in order, page by page.
  const heads = new Map<string, string>();
  for (const a of await q<{ holder: string; name: string; currency: string; last_hash: string }>(sql`select holder, name, currency, last_hash from wallet.accounts`)) {
    heads.set(`${a.holder}|${a.name}|${a.currency}`, a.last_hash);
  }
  let cursor: { holder: string; name: string; currency: string; seq: bigint } | undefined;
  let current = '';
  let prev = GENESIS;
  let prevSeq = 0n;
  let postings = 0;
  const finish = (id: string) => {
    if (id && heads.get(id) !== prev) problems.push({ check: 'chain', detail: `account ${id}: last hash does not match its last posting` });
    heads.delete(id);
  };
  for (;;) {
    const rows = await q<{ holder: string; name: string; currency: string; seq: bigint; transaction_id: string; amount: bigint; balance_after: bigint; hash: string }>(
      cursor
        ? sql`select holder, name, currency, seq, transaction_id, amount, balance_after, hash from wallet.postings
              where (holder, name, currency, seq) > (${cursor.holder}::uuid, ${cursor.name}, ${cursor.currency}::bpchar, ${cursor.seq.toString()}::int8)
              order by holder, name, currency, seq limit ${PAGE}`
        : sql`select holder, name, currency, seq, transaction_id, amount, balance_after, hash from wallet.postings
              order by holder, name, currency, seq limit ${PAGE}`,
    );
    for (const p of rows) {
      postings++;
      const id = `${p.holder}|${p.name}|${p.currency}`;
      if (id !== current) {
        finish(current);
        current = id;
        prev = GENESIS;
        prevSeq = 0n;
      }
      const key = { holder: p.holder, name: p.name, currency: p.currency };
      const seq = BigInt(p.seq);
      // Each posting's hash covers its predecessor's (seq - 1): a gap is a removed posting;
      // otherwise a hash that does not follow is a changed posting (or predecessor's hash).
      if (seq !== prevSeq + 1n) problems.push({ check: 'chain', detail: `account ${id} seq ${p.seq}: does not link to the previous posting` });
      else if (postingHash(prev, key, seq, p.transaction_id, BigInt(p.amount), BigInt(p.balance_after)) !== p.hash) {
        problems.push({ check: 'chain', detail: `account ${id} seq ${p.seq}: content does not match its hash` });
      }
      prev = p.hash;
      prevSeq = seq;
    }
    if (rows.length < PAGE) break;
    const last = rows.at(-1)!;
    cursor = { holder: last.holder, name: last.name, currency: last.currency, seq: BigInt(last.seq) };
  }
  finish(current);
  for (const [id, hash] of heads) if (hash !== GENESIS) problems.push({ check: 'chain', detail: `account ${id}: has a last hash but no postings` });

  const counts = (await q<{ t: bigint; a: bigint }>(sql`select (select count(*) from wallet.transactions)::int8 as t, (select count(*) from wallet.accounts)::int8 as a`))[0]!;
  return {
    ok: problems.length === 0,
    transactions: Number(counts.t),
    postings,
    accounts: Number(counts.a),
    problems,
    seconds: Math.round(performance.now() - started) / 1000,
  };
}

/** Records a check's result (the metric and the back office read the latest). */
export async function recordCheck(db: Db, report: LedgerReport): Promise<void> {
  await sql`insert into wallet.ledger_checks (ok, transactions, postings, accounts, problems)
            values (${report.ok}, ${report.transactions}, ${report.postings}, ${report.accounts}, ${JSON.stringify(report.problems)}::jsonb)`.execute(db);
}
