/** Who is calling. Services decide what each kind may do; the HTTP edge only resolves it. */
export type Principal =
  | { readonly kind: 'anonymous' }
  | ({ readonly kind: 'player'; readonly id: string } & Authentication)
  | ({ readonly kind: 'staff'; readonly id: string; readonly permissions: ReadonlySet<string> } & Authentication)
  | ({ readonly kind: 'service'; readonly id: string; readonly permissions: ReadonlySet<string> } & Authentication)
  /** The operator at the command line or a scheduled job: trusted, always audited. */
  | { readonly kind: 'system'; readonly id: string };

/** How and when the caller authenticated, from the token's claims (absent from tokens that do not say). */
export interface Authentication {
  /** `auth_time`: epoch seconds of the sign-in the token descends from (a refresh keeps it). */
  readonly authTime?: number;
  /** `acr`: the authentication context class (`urn:pitboss:acr:1fa`, `urn:pitboss:acr:2fa`, ...). */
  readonly acr?: string;
  /** `amr` (RFC 8176): `pwd`, `otp`, `mfa`, ... */
  readonly amr?: readonly string[];
  /** `sid`: the sign-in session the token belongs to (identity's session id). */
  readonly sid?: string;
}

export const anonymous: Principal = { kind: 'anonymous' };

/** Permission strings look like `players.read`; `*` grants every permission (the admin role). */
export function hasPermission(principal: Principal, permission: string): boolean {
  switch (principal.kind) {
    case 'system':
      return true;
    case 'staff':
    case 'service':
      return principal.permissions.has('*') || principal.permissions.has(permission);
    case 'player':
    case 'anonymous':
      return false;
  }
}

/** The context a service needs about the request it serves: who, which request, from where. */
export interface RequestContext {
  readonly principal: Principal;
  readonly requestId: string | null;
  readonly sourceIp: string | null;
}

export const systemContext = (id: string): RequestContext => ({ principal: { kind: 'system', id }, requestId: null, sourceIp: null });

export function actorOf(principal: Principal): { type: string; id: string | null } {
  return principal.kind === 'anonymous' ? { type: 'anonymous', id: null } : { type: principal.kind, id: principal.id };
}
