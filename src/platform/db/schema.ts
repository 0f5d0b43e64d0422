import type { ColumnType, Generated } from 'kysely';

// Tables owned by the platform kernel. Modules describe their own tables and reach
// them with `tablesOf<TheirTables>(db)` (src/platform/db/database.ts).

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Json<T = unknown> = ColumnType<T, string, string>;

export interface SchemaMigrationTable {
  module: string;
  name: string;
  checksum: string;
  applied_at: Timestamp;
}

export interface OutboxTable {
  seq: Generated<bigint>;
  id: string;
  type: string;
  version: number;
  occurred_at: Date;
  player_id: string | null;
  payload: Json;
  published_at: Date | null;
}

export interface InboxTable {
  consumer: string;
  event_id: string;
  processed_at: Timestamp;
}

export interface DeadLetterTable {
  id: Generated<bigint>;
  consumer: string;
  event_id: string;
  event: Json;
  error: string;
  attempts: number;
  failed_at: Timestamp;
}

export interface SigningKeyTable {
  kid: string;
  alg: string;
  public_jwk: Json<Record<string, unknown>>;
  private_jwk: Json<Record<string, unknown>>;
  created_at: Timestamp;
  /** After this the key signs nothing new; it stays published until expires_at. */
  retires_at: Date;
  /** After this no token it signed can still be valid; it leaves the JWKS. */
  expires_at: Date;
}

export interface AuditLogTable {
  chain: number;
  seq: bigint;
  id: string;
  at: Date;
  actor_type: string;
  actor_id: string | null;
  action: string;
  target_type: string;
  target_id: string;
  changes: Json<Record<string, unknown>>;
  request_id: string | null;
  source_ip: string | null;
  prev_hash: string;
  hash: string;
}

export interface AuditChainHeadTable {
  chain: number;
  seq: bigint;
  hash: string;
}

export interface AuditCheckpointTable {
  id: Generated<bigint>;
  at: Date;
  heads: Json<Record<string, { seq: string; hash: string }>>;
  kid: string;
  signature: string;
}

export interface PlatformTables {
  'platform.schema_migrations': SchemaMigrationTable;
  'platform.outbox': OutboxTable;
  'platform.inbox': InboxTable;
  'platform.dead_letters': DeadLetterTable;
  'platform.signing_keys': SigningKeyTable;
  'platform.audit_log': AuditLogTable;
  'platform.audit_chain_heads': AuditChainHeadTable;
  'platform.audit_checkpoints': AuditCheckpointTable;
}
