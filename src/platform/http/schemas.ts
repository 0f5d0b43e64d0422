import { Type, type TSchema } from 'typebox';
import { platformErrors } from '../errors.ts';
import { isUuid } from '../ids.ts';

/** RFC 9457 problem details, with Pitboss's stable `code` and field-level `errors`. */
export const Problem = Type.Object(
  {
    type: Type.String({ description: 'urn:pitboss:error:<code>' }),
    title: Type.String(),
    status: Type.Integer(),
    code: Type.String({ description: 'Stable machine-readable error code.' }),
    detail: Type.Optional(Type.String()),
    instance: Type.Optional(Type.String()),
    requestId: Type.Optional(Type.String()),
    errors: Type.Optional(
      Type.Array(
        Type.Object({
          field: Type.String({ description: 'JSON pointer into the request, e.g. /body/email.' }),
          code: Type.String(),
          message: Type.String(),
        }),
      ),
    ),
  },
  { $id: 'Problem', description: 'RFC 9457 problem details (application/problem+json).', additionalProperties: true },
);

/** Problem responses for the given statuses, for a route's `response` schema. */
export function problems(...statuses: number[]): Record<number, TSchema> {
  const out: Record<number, TSchema> = {};
  for (const status of statuses) out[status] = Type.Ref('Problem');
  return out;
}

export const Uuid = (description?: string) => Type.String({ format: 'uuid', ...(description ? { description } : {}) });

/** Cursor pagination: `limit` and an opaque `cursor` from the previous page's `nextCursor`. */
export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
  cursor: Type.Optional(Type.String({ maxLength: 200, description: 'Opaque cursor from the previous page.' })),
};

export const Page = <T extends TSchema>(item: T) =>
  Type.Object({
    items: Type.Array(item),
    nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `cursor` for the next page; null on the last page.' }),
  });

export const encodeCursor = (value: string): string => Buffer.from(value, 'utf8').toString('base64url');
export const decodeCursor = (cursor: string): string => Buffer.from(cursor, 'base64url').toString('utf8');

/** The id a `cursor` query parameter stands for (lists page by UUIDv7 ids); VALIDATION_FAILED if it is not one of ours. */
export function cursorId(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const id = decodeCursor(cursor);
  if (!isUuid(id)) throw platformErrors('VALIDATION_FAILED', { errors: [{ field: '/querystring/cursor', code: 'CURSOR_INVALID', message: 'Not a cursor from this API.' }] });
  return id;
}

/** A page of items ordered by id: the next cursor is the last id, when the page is full. */
export const pageOf = <T extends { id: string }>(items: T[], limit: number) => {
  const last = items.at(-1);
  return { items, nextCursor: items.length === limit && last ? encodeCursor(last.id) : null };
};
