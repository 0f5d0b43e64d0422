import type { TSchema } from 'typebox';

/**
 * The one event map. Each module adds its events by declaration merging in its
 * events.ts:
 *
 *   declare module '../../platform/events/types.ts' {
 *     interface EventMap { 'player.registered': PlayerRegistered }
 *   }
 *
 * so the platform stays ignorant of modules while `emit` and consumers are typed.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface EventMap {}

export type EventType = Extract<keyof EventMap, string>;

/** What travels on the bus: the envelope of ARCHITECTURE.md section 5. */
export interface EventEnvelope<T extends EventType = EventType> {
  readonly id: string;
  readonly type: T;
  readonly version: number;
  readonly occurredAt: string;
  readonly playerId: string | null;
  readonly payload: EventMap[T];
}

/** An event as a service emits it; the outbox adds id and time. */
export interface NewEvent<T extends EventType = EventType> {
  readonly type: T;
  readonly playerId: string | null;
  readonly payload: EventMap[T];
  readonly version?: number;
}

/** A module's description of an event it emits: version and payload schema, for the catalogue. */
export interface EventSpec {
  readonly version: number;
  readonly description: string;
  readonly payload: TSchema;
}

export type EventCatalogue = Readonly<Partial<Record<EventType, EventSpec>>>;
