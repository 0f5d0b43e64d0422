import { defineModule } from '../../platform/module.ts';
import { fail } from './errors.ts';
import { events } from './events.ts';
import { migrations } from './migrations.ts';
import { preloadPasswordList } from './password-policy.ts';
import { playerRoutes } from './routes.ts';
import { PERMISSIONS, PlayerService } from './service.ts';

export type { PlayerRecord } from './store.ts';
export type { PlayerService, Registration } from './service.ts';
export type { PlayerStatus } from './events.ts';
// The password hashing (argon2id) and policy every account kind shares: staff passwords use them too.
export { dummyPasswordHash, hashPassword, verifyPassword } from './password-hash.ts';
export { checkPassword as checkPasswordPolicy, PASSWORD_MAX_LENGTH } from './password-policy.ts';

/** Player registration, profile and status; the hot player record lives in the cache. */
export const playersModule = defineModule<PlayerService>({
  name: 'players',
  description: 'Player registration, profile and status.',
  migrations,
  errors: fail.catalogue,
  events,
  permissions: {
    [PERMISSIONS.read]: 'See and search players (personal data masked without pii.read).',
    [PERMISSIONS.manage]: "Change a player's status.",
  },
  create(kernel) {
    const service = new PlayerService(kernel);
    return {
      api: service,
      routes: playerRoutes(service),
      consumers: [
        {
          // With Redis (the multi-process setup) one invalidation serves every process; the
          // in-memory cache belongs to a single process, which receives every event.
          name: 'players.cache-invalidation',
          events: ['player.registered', 'player.status_changed', 'player.email_changed', 'player.email_verified'],
          handle: async (event) => {
            if (event.playerId) await service.invalidate(event.playerId);
          },
        },
      ],
      start: async () => preloadPasswordList(),
    };
  },
});
