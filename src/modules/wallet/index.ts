import { defineModule } from '../../platform/module.ts';
import { playersModule } from '../players/index.ts';
import { Adjustments } from './adjustments.ts';
import { fail } from './errors.ts';
import { events } from './events.ts';
import { migrations } from './migrations.ts';
import { Payments, SandboxProvider } from './payments.ts';
import { gameProviders } from './providers/index.ts';
import { walletRoutes } from './routes.ts';
import { PERMISSIONS, WalletService } from './service.ts';
import { recordCheck, verifyLedger } from './verify.ts';
import { pruneIdempotency } from './store.ts';

export type { WalletService, PlayerGate, GateAction } from './service.ts';
export type { LedgerReport } from './verify.ts';
export { verifyLedger } from './verify.ts';

export interface WalletApi {
  readonly wallet: WalletService;
  readonly payments: Payments;
  readonly adjustments: Adjustments;
}

/** Multi-wallet double-entry ledger, payments, adjustments and the seamless wallet for game providers. */
export const walletModule = defineModule<WalletApi>({
  name: 'wallet',
  description: 'Double-entry ledger, wallets, payments and the seamless wallet API for game providers.',
  migrations,
  errors: fail.catalogue,
  events,
  permissions: {
    [PERMISSIONS.read]: "See players' balances and transactions.",
    [PERMISSIONS.pay]: 'Approve and reject withdrawals; start payments for players.',
    [PERMISSIONS.adjust]: 'Request manual balance adjustments.',
    [PERMISSIONS.approveAdjustment]: 'Approve or reject adjustments above the approval threshold.',
    [PERMISSIONS.move]: "Move money between a player's wallets and charge fees.",
    [PERMISSIONS.sessions]: 'Open game sessions on behalf of players.',
  },
  create(kernel, use) {
    const wallet = new WalletService(kernel, use(playersModule));
    const payments = new Payments(wallet);
    const adjustments = new Adjustments(wallet);
    if (kernel.config.paymentsSandbox) {
      const sandbox: SandboxProvider = new SandboxProvider('sandbox-secret', (callback) => payments.handleCallback(sandbox.name, callback).then(() => undefined));
      payments.register(sandbox);
    }
    const providers = gameProviders(kernel, wallet);
    let timer: NodeJS.Timeout | undefined;
    let pruner: NodeJS.Timeout | undefined;
    // One process of the deployment prunes (the holder of this lock).
    const pruneLock = kernel.database.leaderLock(7_344_101);
    return {
      api: { wallet, payments, adjustments },
      routes: async (app) => {
        await walletRoutes(wallet, payments, adjustments)(app);
        for (const provider of providers) await app.register(async (scope) => provider.routes(scope));
      },
      start: async () => {
        await wallet.start();
        if (kernel.config.paymentsSandbox) await payments.resume('sandbox');
        pruner = setInterval(() => {
          const olderThan = new Date(Date.now() - kernel.config.idempotencyRetentionDays * 86_400_000);
          pruneLock
            .held()
            .then(async (leader) => {
              if (!leader) return;
              const pruned = await pruneIdempotency(wallet.db, olderThan);
              if (pruned > 0) kernel.logger.info({ pruned, olderThan }, 'idempotency keys past their retention pruned');
            })
            .catch((err: unknown) => kernel.logger.warn({ err }, 'idempotency prune failed'));
        }, 3_600_000);
        pruner.unref();
        let lastOk = Number.NaN;
        kernel.metrics.gauge('pitboss_ledger_check_ok', 'Result of the last ledger consistency check (1 ok, 0 problems, NaN not run yet).', async () => lastOk);
        if (kernel.config.ledgerVerifySeconds > 0) {
          timer = setInterval(() => {
            verifyLedger(kernel.database.db)
              .then(async (report) => {
                lastOk = report.ok ? 1 : 0;
                await recordCheck(kernel.database.db, report);
                if (!report.ok) kernel.logger.error({ problems: report.problems.slice(0, 20) }, 'ledger check found problems');
              })
              .catch((err: unknown) => kernel.logger.error({ err }, 'ledger check failed to run'));
          }, kernel.config.ledgerVerifySeconds * 1000);
          timer.unref();
        }
      },
      stop: async () => {
        if (timer) clearInterval(timer);
        if (pruner) clearInterval(pruner);
        await pruneLock.release();
        await wallet.stop();
      },
    };
  },
});
