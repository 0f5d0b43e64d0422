import { Type } from 'typebox';
import { contextOf, requireAuthenticated, requirePermission, requireStepUp } from '../../platform/http/auth.ts';
import { problems, Uuid } from '../../platform/http/schemas.ts';
import type { HttpApp } from '../../platform/http/types.ts';
import { fail, playerOf } from './errors.ts';
import { MFA_POLICY_PERMISSION, type MfaPolicyService } from './policy.ts';

const tags = ['identity'];
const bearer = [{ bearer: [] }];

const Policy = Type.Object({
  requiredByPlayer: Type.Boolean({ description: 'The player requires MFA for their account.' }),
  requiredByStaff: Type.Boolean({ description: 'Staff require MFA for this player; the player cannot lift it.' }),
  required: Type.Boolean({ description: 'Either: every sign-in asks for a second factor, and one without any enrols an authenticator app first.' }),
});
const Body = Type.Object({ required: Type.Boolean() }, { additionalProperties: false });

/** Per-account MFA requirement: the player's own switch, and staff's for a player. */
export function policyRoutes(policy: MfaPolicyService, playerExists: (id: string) => Promise<boolean>) {
  return async (app: HttpApp): Promise<void> => {
    const knownPlayer = async (id: string): Promise<string> => {
      if (!(await playerExists(id))) throw fail('MFA_POLICY_PLAYER_NOT_FOUND');
      return id;
    };

    app.get(
      '/v1/identity/mfa/policy',
      { preHandler: requireAuthenticated, schema: { tags, summary: "The signed-in player's MFA requirement.", security: bearer, response: { 200: Policy, ...problems(401, 403) } } },
      async (request) => policy.get(playerOf(request)),
    );

    app.put(
      '/v1/identity/mfa/policy',
      {
        // A fresh sign-in (with the second factor once one exists): a stolen token must not lift the requirement.
        preHandler: [requireAuthenticated, requireStepUp()],
        schema: {
          tags,
          summary: 'Require (or stop requiring) MFA for the signed-in player’s account.',
          description: 'With it on and no second factor enrolled, the next sign-in has the player set up an authenticator app on the sign-in page before any token is issued. It does not lift a requirement set by staff.',
          security: bearer,
          body: Body,
          response: { 200: Policy, ...problems(400, 401, 403) },
        },
      },
      async (request) => policy.set(contextOf(request), playerOf(request), 'player', request.body.required),
    );

    const Params = Type.Object({ playerId: Uuid('The player.') });

    app.get(
      '/v1/identity/players/:playerId/mfa-policy',
      {
        preHandler: requirePermission(MFA_POLICY_PERMISSION),
        schema: { tags, summary: `A player's MFA requirement (staff with ${MFA_POLICY_PERMISSION}).`, security: bearer, params: Params, response: { 200: Policy, ...problems(400, 401, 403, 404) } },
      },
      async (request) => policy.get(await knownPlayer(request.params.playerId)),
    );

    app.put(
      '/v1/identity/players/:playerId/mfa-policy',
      {
        preHandler: requirePermission(MFA_POLICY_PERMISSION),
        schema: {
          tags,
          summary: `Require (or stop requiring) MFA for a player (staff with ${MFA_POLICY_PERMISSION}).`,
          description: "Staff's switch, separate from the player's own: the player cannot lift it. Audited and emitted (identity.mfa.policy_changed).",
          security: bearer,
          params: Params,
          body: Body,
          response: { 200: Policy, ...problems(400, 401, 403, 404) },
        },
      },
      async (request) => policy.set(contextOf(request), await knownPlayer(request.params.playerId), 'staff', request.body.required),
    );
  };
}
