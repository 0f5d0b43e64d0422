// Domain errors carry a stable code from a module's catalogue. Services raise them;
// only the edges (HTTP, gRPC, CLI) map them to a status or an exit code.

export interface ErrorSpec {
  /** HTTP status the edge answers with. */
  readonly status: number;
  /** One sentence, shown as the problem's title. */
  readonly message: string;
}

export type ErrorCatalogue = Readonly<Record<string, ErrorSpec>>;

export interface FieldError {
  /** JSON pointer to the field, e.g. `/body/email`. */
  readonly field: string;
  readonly code: string;
  readonly message: string;
}

export class DomainError extends Error {
  readonly code: string;
  readonly status: number;
  /** The catalogue sentence. */
  readonly title: string;
  readonly detail: string | undefined;
  readonly errors: readonly FieldError[] | undefined;
  readonly extra: Readonly<Record<string, unknown>> | undefined;

  constructor(code: string, spec: ErrorSpec, options: { detail?: string; errors?: readonly FieldError[]; extra?: Record<string, unknown> } = {}) {
    super(options.detail ?? spec.message);
    this.name = 'DomainError';
    this.code = code;
    this.status = spec.status;
    this.title = spec.message;
    this.detail = options.detail;
    this.errors = options.errors;
    this.extra = options.extra;
  }
}

/**
 * Declares a module's error catalogue and returns a typed raiser:
 * `const fail = defineErrors({ PLAYER_NOT_FOUND: { status: 404, message: '…' } })`,
 * then `throw fail('PLAYER_NOT_FOUND')`. An unknown code is a compile error.
 */
export function defineErrors<const C extends ErrorCatalogue>(catalogue: C) {
  const raise = (code: keyof C & string, options?: { detail?: string; errors?: readonly FieldError[]; extra?: Record<string, unknown> }): DomainError =>
    new DomainError(code, catalogue[code]!, options);
  return Object.assign(raise, { catalogue });
}

/** Errors of the platform itself (HTTP edge, auth, validation). */
export const platformErrors = defineErrors({
  VALIDATION_FAILED: { status: 400, message: 'The request is not valid.' },
  MALFORMED_REQUEST: { status: 400, message: 'The request body could not be parsed.' },
  UNAUTHENTICATED: { status: 401, message: 'A valid bearer token is required.' },
  STEP_UP_REQUIRED: { status: 401, message: 'This operation needs a fresh sign-in (and the second factor when the account has one); WWW-Authenticate says what to ask for.' },
  FORBIDDEN: { status: 403, message: 'The caller lacks the permission for this operation.' },
  NOT_FOUND: { status: 404, message: 'No such resource.' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'The method is not allowed on this resource.' },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'The request body is too large.' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'The request content type is not supported.' },
  RATE_LIMITED: { status: 429, message: 'Too many requests; slow down.' },
  INTERNAL: { status: 500, message: 'An unexpected error occurred; it has been logged.' },
  UNAVAILABLE: { status: 503, message: 'The service is not ready.' },
});
