import { sql, type QueryExecutorProvider } from 'kysely';

/**
 * Deletes the rows of `table` whose `column` is before `olderThan`, a chunk at a time,
 * so no long transaction or lock holds up the writers of that table. Returns how many.
 */
export async function deleteOlderThan(db: QueryExecutorProvider, table: string, column: string, olderThan: Date, chunk = 10_000): Promise<number> {
  let total = 0;
  for (;;) {
    const result = await sql<{ n: number }>`
      with gone as (
        delete from ${sql.table(table)} where ctid in (select ctid from ${sql.table(table)} where ${sql.ref(column)} < ${olderThan.toISOString()}::timestamptz limit ${chunk})
        returning 1
      )
      select count(*)::int4 as n from gone`.execute(db);
    const n = result.rows[0]?.n ?? 0;
    total += n;
    if (n < chunk) return total;
  }
}
