import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { DomainError, platformErrors, type FieldError } from '../errors.ts';

interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/** Ajv errors as field errors: `/body/email`, with the missing property named for `required`. */
export function fieldErrors(part: string, errors: readonly AjvError[]): FieldError[] {
  return errors.map((e) => {
    let path = e.instancePath;
    if (e.keyword === 'required' && typeof e.params.missingProperty === 'string') path += `/${e.params.missingProperty}`;
    if (e.keyword === 'additionalProperties' && typeof e.params.additionalProperty === 'string') path += `/${e.params.additionalProperty}`;
    return { field: `/${part}${path}`, code: e.keyword, message: e.message ?? e.keyword };
  });
}

/** Maps anything thrown while serving a request to a domain error with a stable code. */
export function toDomainError(error: unknown): DomainError {
  if (error instanceof DomainError) return error;
  const fe = error as Partial<FastifyError> & { validation?: AjvError[]; validationContext?: string };
  if (fe.validation) {
    return platformErrors('VALIDATION_FAILED', { errors: fieldErrors(fe.validationContext ?? 'body', fe.validation) });
  }
  switch (fe.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return platformErrors('MALFORMED_REQUEST', { detail: fe.message });
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return platformErrors('PAYLOAD_TOO_LARGE');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_TYPE':
      return platformErrors('UNSUPPORTED_MEDIA_TYPE', { detail: fe.message });
    default:
      break;
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return platformErrors('MALFORMED_REQUEST', { detail: fe.message });
  }
  return platformErrors('INTERNAL');
}

export function sendProblem(request: FastifyRequest, reply: FastifyReply, error: DomainError) {
  return reply.code(error.status).type(PROBLEM_CONTENT_TYPE).send(problemBody(request, error));
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

/** The RFC 9457 body for a domain error. */
export function problemBody(request: Pick<FastifyRequest, 'url' | 'id'>, error: DomainError): Record<string, unknown> {
  const body: Record<string, unknown> = {
    type: `urn:pitboss:error:${error.code}`,
    title: error.title,
    status: error.status,
    code: error.code,
    instance: request.url,
    requestId: request.id,
  };
  if (error.detail) body.detail = error.detail;
  if (error.errors) body.errors = error.errors;
  if (error.extra) Object.assign(body, error.extra);
  return body;
}
