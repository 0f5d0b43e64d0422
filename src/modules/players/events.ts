import { Type, type Static } from 'typebox';
import type { EventCatalogue } from '../../platform/events/types.ts';

// Events carry no personal data: they fan out to queues and other systems; consumers
// that need contact details ask the players API with the permission to see them.

export const TrafficSource = Type.Object(
  {
    affiliateId: Type.Optional(Type.String({ maxLength: 100 })),
    utmSource: Type.Optional(Type.String({ maxLength: 200 })),
    utmMedium: Type.Optional(Type.String({ maxLength: 200 })),
    utmCampaign: Type.Optional(Type.String({ maxLength: 200 })),
    utmTerm: Type.Optional(Type.String({ maxLength: 200 })),
    utmContent: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);

export const PLAYER_STATUSES = ['active', 'blocked', 'suspended', 'suspended_may_withdraw', 'self_excluded', 'closed'] as const;
export const PlayerStatus = Type.Enum(PLAYER_STATUSES, {
  description: 'active; blocked (by staff); suspended (no play, no payments); suspended_may_withdraw; self_excluded; closed.',
});
export type PlayerStatus = Static<typeof PlayerStatus>;

const PlayerRegistered = Type.Object({
  playerId: Type.String({ format: 'uuid' }),
  country: Type.String(),
  currency: Type.String(),
  status: PlayerStatus,
  trafficSource: TrafficSource,
  registeredAt: Type.String({ format: 'date-time' }),
});

const PlayerStatusChanged = Type.Object({
  playerId: Type.String({ format: 'uuid' }),
  from: PlayerStatus,
  to: PlayerStatus,
  reason: Type.String(),
});

const PlayerEmailChanged = Type.Object({ playerId: Type.String({ format: 'uuid' }) });

const PlayerEmailVerified = Type.Object({
  playerId: Type.String({ format: 'uuid' }),
  verifiedAt: Type.String({ format: 'date-time' }),
});

declare module '../../platform/events/types.ts' {
  interface EventMap {
    'player.registered': Static<typeof PlayerRegistered>;
    'player.status_changed': Static<typeof PlayerStatusChanged>;
    'player.email_changed': Static<typeof PlayerEmailChanged>;
    'player.email_verified': Static<typeof PlayerEmailVerified>;
  }
}

export const events: EventCatalogue = {
  'player.registered': { version: 1, description: 'A player registered.', payload: PlayerRegistered },
  'player.status_changed': { version: 1, description: "Staff changed a player's status (blocked, suspended, ...).", payload: PlayerStatusChanged },
  'player.email_changed': { version: 1, description: 'A player changed their email address (the address is not in the event; ask the players API).', payload: PlayerEmailChanged },
  'player.email_verified': { version: 1, description: 'The player confirmed their email address with the link sent to it.', payload: PlayerEmailVerified },
};
