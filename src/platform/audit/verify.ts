import { sql } from 'kysely';
import type { Db } from '../db/database.ts';
import { entryHash, GENESIS_HASH } from './audit.ts';
import { verifyCheckpoint, type Heads } from './checkpoint.ts';

export interface AuditProblem {
  chain: number | null;
  seq: string | null;
  problem: string;
}

export interface AuditReport {
  ok: boolean;
  chains: number;
  entries: number;
  checkpoints: number;
  problems: AuditProblem[];
}

const PAGE = 2000;

/**
 * Re-walks every chain: sequence numbers must be contiguous from 1 (a deleted row
 * leaves a gap), each row must link to its predecessor's hash and hash to its own
 * (a changed or inserted row breaks it), each chain must end where its head says, and
 * every signed checkpoint must verify and agree with the rows.
 */
export async function verifyAudit(db: Db): Promise<AuditReport> {
  const problems: AuditProblem[] = [];
  const heads = await db.selectFrom('platform.audit_chain_heads').selectAll().orderBy('chain').execute();
  const checkpoints = await db.selectFrom('platform.audit_checkpoints').selectAll().orderBy('id').execute();
  // Only the rows a checkpoint names are remembered, so memory stays flat on a long log.
  const wanted = new Set<string>();
  for (const cp of checkpoints) for (const [chain, h] of Object.entries(cp.heads as Heads)) wanted.add(`${chain}:${h.seq}`);
  const rowHash = new Map<string, string>();
  let entries = 0;
  for (const head of heads) {
    let expectedSeq = 1n;
    let prev = GENESIS_HASH;
    // No lower bound on the first page: a row forged at seq 0 or below must be seen too.
    let after: bigint | null = null;
    for (;;) {
      const from: bigint | null = after;
      const rows = await db
        .selectFrom('platform.audit_log')
        .selectAll()
        .where('chain', '=', head.chain)
        .$if(from !== null, (qb) => qb.where('seq', '>', from!))
        .orderBy('seq')
        .limit(PAGE)
        .execute();
      for (const row of rows) {
        entries++;
        if (row.seq > expectedSeq) {
          problems.push({ chain: head.chain, seq: row.seq.toString(), problem: `expected seq ${expectedSeq}: ${row.seq - expectedSeq} entr(y/ies) missing before it` });
        } else if (row.seq < expectedSeq) {
          problems.push({ chain: head.chain, seq: row.seq.toString(), problem: `expected seq ${expectedSeq}: out of sequence (inserted)` });
        }
        if (row.prev_hash !== prev) problems.push({ chain: head.chain, seq: row.seq.toString(), problem: 'does not link to the previous entry (inserted or reordered)' });
        const computed = entryHash(row.prev_hash, row);
        if (computed !== row.hash) problems.push({ chain: head.chain, seq: row.seq.toString(), problem: 'content does not match its hash (changed)' });
        prev = row.hash;
        expectedSeq = row.seq + 1n;
        after = row.seq;
        if (wanted.has(`${row.chain}:${row.seq}`)) rowHash.set(`${row.chain}:${row.seq}`, row.hash);
      }
      if (rows.length < PAGE) break;
    }
    if (head.seq !== expectedSeq - 1n || head.hash !== prev) {
      problems.push({ chain: head.chain, seq: head.seq.toString(), problem: `chain ends at seq ${expectedSeq - 1n} but its head says ${head.seq} (entries removed or head rewritten)` });
    }
  }
  // Rows in a chain without a head (a forged chain number, or a deleted head) are never walked above.
  const orphans = await sql<{ chain: number; n: bigint }>`
    select chain, count(*)::int8 as n from platform.audit_log
    where chain not in (select chain from platform.audit_chain_heads)
    group by chain order by chain`.execute(db);
  for (const o of orphans.rows) {
    entries += Number(o.n);
    problems.push({ chain: o.chain, seq: null, problem: `${o.n} entr(y/ies) in a chain that has no head (inserted, or the head was deleted)` });
  }
  for (const cp of checkpoints) {
    const heads = cp.heads as Heads;
    const check = await verifyCheckpoint(db, { at: cp.at, heads, kid: cp.kid, signature: cp.signature });
    if (!check.ok) {
      problems.push({ chain: null, seq: null, problem: `checkpoint ${cp.id} at ${cp.at.toISOString()}: ${check.reason}` });
      continue;
    }
    for (const [chain, h] of Object.entries(heads)) {
      if (h.seq === '0') continue;
      const actual = rowHash.get(`${chain}:${h.seq}`);
      if (actual !== h.hash) {
        problems.push({ chain: Number(chain), seq: h.seq, problem: `checkpoint ${cp.id} saw hash ${h.hash.slice(0, 12)}… here, the log has ${actual ? actual.slice(0, 12) + '…' : 'no entry'}` });
      }
    }
  }
  return { ok: problems.length === 0, chains: heads.length, entries, checkpoints: checkpoints.length, problems };
}
