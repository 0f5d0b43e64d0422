import { randomBytes } from 'node:crypto';
import { anonymous } from '../../platform/auth/principal.ts';
import { ConfigError, oidcIssuer } from '../../platform/config.ts';
import { tablesOf } from '../../platform/db/database.ts';
import type { HttpApp } from '../../platform/http/types.ts';
import { defineModule } from '../../platform/module.ts';
import { backofficeModule } from '../backoffice/index.ts';
import { playersModule } from '../players/index.ts';
import { Accounts } from './accounts.ts';
import { ClientService, PERMISSIONS } from './clients.ts';
import { fail } from './errors.ts';
import { events } from './events.ts';
import { migrations } from './migrations.ts';
import { deleteExpiredPayloads } from './oidc-adapter.ts';
import { ProviderHost } from './provider.ts';
import { identityRoutes } from './routes.ts';
import { LOCAL_MESSAGES_PERMISSION, localMessageRoutes } from './local-messages-routes.ts';
import { totpEnrolmentFor } from './enrolment.ts';
import { smsRoutes } from './mfa-sms-routes.ts';
import { MFA_POLICY_PERMISSION, MfaPolicyService } from './policy.ts';
import { policyRoutes } from './policy-routes.ts';
import { SmsService } from './sms.ts';
import { EmailVerificationService } from './email-verification.ts';
import { emailVerificationRoutes } from './email-verification-routes.ts';
import { IdentityService } from './service.ts';
import { sharedSecret, type IdentityTables } from './store.ts';
import { SignInThrottle } from './throttle.ts';
import { TotpService } from './totp.ts';
import { SESSION_PERMISSIONS, SessionService } from './sessions.ts';
import { PasswordService } from './passwords.ts';
import { relyingPartyOf, WebAuthnService } from './webauthn.ts';

export type { ClientService, CreatedClient, GrantType, NewClient } from './clients.ts';
export type { ClientRecord } from './store.ts';
export { API_RESOURCE, API_SCOPE } from './scopes.ts';

export interface IdentityApi {
  readonly clients: ClientService;
  /** The OpenID Connect provider's issuer URL. */
  readonly issuer: string;
}

type Routes = (app: HttpApp) => Promise<void>;
/** Several route sets registered one after the other in the module's scope. */
const inOrder =
  (...sets: Routes[]): Routes =>
  async (app) => {
    for (const routes of sets) await routes(app);
  };

/** OAuth2/OpenID Connect provider (panva's oidc-provider), hosted sign-in, and the client registry. */
export const identityModule = defineModule<IdentityApi>({
  name: 'identity',
  description: 'OAuth2/OpenID Connect provider, hosted sign-in and the OAuth client registry.',
  migrations,
  errors: fail.catalogue,
  events,
  permissions: {
    [PERMISSIONS.readClients]: 'See registered OAuth2 clients (never their secrets).',
    [PERMISSIONS.manageClients]: 'Register OAuth2 clients, disable them and rotate their secrets.',
    [SESSION_PERMISSIONS.read]: "See a player's sign-in sessions (devices, addresses, last use).",
    [SESSION_PERMISSIONS.manage]: "End a player's sign-in sessions (one, or all).",
    [MFA_POLICY_PERMISSION]: "Require MFA for a player's account (or lift staff's requirement).",
    [LOCAL_MESSAGES_PERMISSION]: 'Read the messages (SMS codes, email links) kept by the local message gateway, while it is in use (development and test deployments).',
  },
  create(kernel, use) {
    const { config } = kernel;
    const issuer = oidcIssuer(config);
    const issuerPath = new URL(issuer).pathname.replace(/\/+$/, '');
    if (issuerPath === '') throw new ConfigError('OIDC_ISSUER', 'needs a path (e.g. https://casino.example/oidc): the provider is served under it, beside the API');
    const db = tablesOf<IdentityTables>(kernel.database.db);
    const players = use(playersModule);
    const accounts = new Accounts(players, use(backofficeModule));
    const clients = new ClientService(kernel);
    const throttle = new SignInThrottle(kernel.cache, {
      delayAfter: config.signInDelayAfter,
      delayMs: config.signInDelayMs,
      maxDelayMs: config.signInMaxDelayMs,
      accountLockThreshold: config.signInAccountLockThreshold,
      sourceLockThreshold: config.signInSourceLockThreshold,
      lockSeconds: config.signInLockSeconds,
      windowSeconds: config.signInWindowSeconds,
    });
    const totp = new TotpService(kernel, db);
    const webauthn = new WebAuthnService(kernel, db, relyingPartyOf(config.publicUrl));
    const sms = new SmsService(kernel, db);
    const policy = new MfaPolicyService(kernel, db);
    const identity = new IdentityService(kernel, accounts, throttle, totp, webauthn, { sms, policy });
    const sessions = new SessionService(kernel, db);
    const passwords = new PasswordService(kernel, db, use(playersModule), sessions);
    // The platform's step-up guard asks whether a player has a second factor (the other
    // factors' modules add their checks the same way), and its bearer check whether a
    // token's session has ended.
    kernel.authPolicy.addSecondFactorCheck((playerId) => totp.isEnabled(playerId));
    kernel.authPolicy.addSecondFactorCheck((playerId) => webauthn.hasCredentials(playerId));
    kernel.authPolicy.addSecondFactorCheck((playerId) => sms.isEnabled(playerId));
    kernel.authPolicy.setSessionEndedCheck((sessionId) => sessions.isEnded(sessionId));
    const emailVerification = new EmailVerificationService(kernel, db, players);
    let stopped = false;
    const wakeUps = new Set<NodeJS.Timeout>();
    const sendQueuedEmails = () => {
      if (stopped) return;
      emailVerification.drain().catch((err: unknown) => kernel.logger.error({ err }, 'sending verification emails failed'));
    };
    const sendSoon = (ms: number) => {
      const t = setTimeout(() => {
        wakeUps.delete(t);
        sendQueuedEmails();
      }, ms);
      t.unref();
      wakeUps.add(t);
    };
    let mailTimer: NodeJS.Timeout | undefined;
    const labelOf = async (accountId: string) => {
      const login = (await accounts.find(accountId))?.claims.preferred_username;
      return typeof login === 'string' ? login : accountId;
    };
    const host = new ProviderHost({
      issuer,
      db,
      keys: kernel.keys,
      accounts,
      cookieKeys: async () => [await sharedSecret(db, 'oidc-cookie-key', () => randomBytes(32).toString('base64url'))],
      accessTokenTtl: config.accessTokenTtlSeconds,
      refreshTokenTtl: config.oidcRefreshTokenTtlSeconds,
      sessionTtl: config.oidcSessionTtlSeconds,
      proxy: config.trustProxy !== false,
      logger: kernel.logger,
      onTokenReuse: (reuse) => {
        identity.recordTokenReuse(reuse).catch((err: unknown) => kernel.logger.error({ err }, 'recording a token reuse failed'));
      },
      sessions: {
        record: (sighting) => sessions.record(sighting),
        usable: (sessionId, options) => sessions.usable(sessionId, options),
        signedOut: (sessionId, requestId, sourceIp) => sessions.signedOut({ principal: anonymous, requestId, sourceIp }, sessionId),
        hasSecondFactor: (accountId) => kernel.authPolicy.hasSecondFactor(accountId),
      },
      clientKind: (clientId) => clients.accountKindOf(clientId),
    });
    let timer: NodeJS.Timeout | undefined;
    return {
      api: { clients, issuer },
      routes: inOrder(
        identityRoutes({
        host,
        issuerPath,
        clients,
        identity,
        totp,
        webauthn,
        cache: kernel.cache,
        labelOf,
        account: { sessions, passwords, players: use(playersModule) },
        signInMfa: {
          clientKind: (clientId) => clients.accountKindOf(clientId),
          totpEnrolment: async (accountId, restart) => totpEnrolmentFor(db, totp, accountId, await labelOf(accountId), restart),
          smsStatus: (accountId) => sms.status(accountId),
        },
      }),
        smsRoutes(sms),
        policyRoutes(policy, async (id) => (await players.find(id)) !== undefined),
        localMessageRoutes(config, kernel.database.db),
        emailVerificationRoutes(emailVerification),
      ),
      consumers: [
        {
          // Queued in the consumer's transaction (exactly once with its inbox row); sent after it commits.
          name: 'identity.email-verification',
          events: ['player.registered', 'player.email_changed'],
          handle: async (event, trx) => {
            if (!event.playerId) return;
            await emailVerification.queue(trx, event.playerId, event.type === 'player.email_changed' ? 'email_changed' : 'registration');
            // The row is visible once the consumer's transaction commits, which the handler
            // cannot wait for: look soon and again a little later (the 30 s sweep is the backstop).
            for (const ms of [0, 100, 1000]) sendSoon(ms);
          },
        },
      ],
      start: async () => {
        await host.provider();
        timer = setInterval(() => {
          deleteExpiredPayloads(db).catch((err: unknown) => kernel.logger.error({ err }, 'deleting expired OpenID Connect state failed'));
        }, 3_600_000);
        timer.unref();
        // Picks up what a crash or another process left queued.
        mailTimer = setInterval(sendQueuedEmails, 30_000);
        mailTimer.unref();
        sendQueuedEmails();
      },
      stop: async () => {
        if (timer) clearInterval(timer);
        stopped = true;
        if (mailTimer) clearInterval(mailTimer);
        for (const t of wakeUps) clearTimeout(t);
        await emailVerification.settled();
      },
    };
  },
});
