/**
 * Sign-in for the dashboard: OpenID Connect, authorization code with PKCE, through oauth4webapi
 * (a certified client; nothing here speaks OAuth by hand). The ID token is what the page connects
 * with; it and the refresh token live in sessionStorage (this tab only, gone with it), never in
 * the URL. Tokens are refreshed ahead of expiry; a refresh the issuer refuses ends the session.
 */
import { AppError, errorMessage } from '../../lambdas/core/errors';
import { decodeToken } from '../../lambdas/core/token-claims';
import type { AuthConfig } from './config';
import { refreshDelayMs } from './token-status';

type OAuth = typeof import('oauth4webapi', { with: { 'resolution-mode': 'import' } });
type AuthorizationServer = Awaited<ReturnType<OAuth['processDiscoveryResponse']>>;

const SESSION_KEY = 'iot-dashboard.session';
const PENDING_KEY = 'iot-dashboard.sign-in';
/** Wait before trying a refresh again after a network failure (the token may still be valid). */
const REFRESH_RETRY_MS = 10_000;

/** Who is signed in, from the ID token. */
export interface SignedInUser {
  readonly sub: string;
  /** Display name: `name`, else the user name or e-mail, else the subject. */
  readonly name: string;
  /** The sites claim as a list; `['*']` means every site. */
  readonly sites: readonly string[];
}

interface StoredSession {
  idToken: string;
  refreshToken?: string;
}

interface PendingSignIn {
  state: string;
  nonce: string;
  codeVerifier: string;
}

/** The sign-in could not complete; the message says what happened. */
class SignInError extends AppError {
  override name = 'SignInError';
}

function listOf(value: unknown): string[] {
  const items = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : [];
  return items.filter((item): item is string => typeof item === 'string').map((item) => item.trim()).filter(Boolean);
}

/** The dashboard's OpenID Connect session. */
export class SignIn {
  private oauth?: OAuth;
  private server?: AuthorizationServer;
  private session?: StoredSession;
  private refreshing?: Promise<string>;
  private refreshTimer?: ReturnType<typeof setTimeout>;
  private readonly refreshedHandlers = new Set<() => void>();
  private readonly endedHandlers = new Set<(reason: string) => void>();
  /** Where the issuer sends the browser back: the page's directory, without query or fragment. */
  readonly redirectUri: string;

  constructor(
    private readonly config: AuthConfig,
    pageUrl: string = window.location.href,
  ) {
    this.redirectUri = new URL('./', pageUrl).href;
  }

  /** Called after each refresh, with the new token in place. */
  onRefreshed(handler: () => void): void {
    this.refreshedHandlers.add(handler);
  }

  /** Called when the session ends (the issuer refused a refresh); the page should offer sign-in. */
  onEnded(handler: (reason: string) => void): void {
    this.endedHandlers.add(handler);
  }

  /**
   * Completes a sign-in the issuer sent the browser back from, or resumes this tab's session.
   * Resolves true when signed in; false when the browser is leaving for the issuer's login page.
   */
  async start(pageUrl: string = window.location.href): Promise<boolean> {
    const url = new URL(pageUrl);
    if (url.searchParams.has('code') || url.searchParams.has('error')) {
      // The code and state are single-use; take them out of the address bar and history at once.
      window.history.replaceState(null, '', this.redirectUri + url.hash);
      await this.finishSignIn(url);
    } else {
      this.session = this.loadSession();
    }
    if (!this.session) {
      await this.signIn();
      return false;
    }
    if (refreshDelayMs(this.session.idToken, Date.now()) === 0) {
      try {
        await this.refresh();
      } catch {
        await this.signIn();
        return false;
      }
    }
    this.scheduleRefresh();
    return true;
  }

  /** The signed-in user, from the current ID token. */
  get user(): SignedInUser | undefined {
    const claims = this.session && decodeToken(this.session.idToken)?.claims;
    if (!claims || typeof claims.sub !== 'string') return undefined;
    const name = [claims.name, claims.preferred_username, claims['cognito:username'], claims.email, claims.sub].find(
      (value): value is string => typeof value === 'string' && value !== '',
    )!;
    const sites = listOf(claims[this.config.sitesClaim ?? 'sites']);
    return { sub: claims.sub, name, sites: sites.includes('*') ? ['*'] : sites };
  }

  /** The current ID token, unchecked (to explain a refusal). */
  get token(): string | undefined {
    return this.session?.idToken;
  }

  /** An ID token good for a handshake now: the current one, or a refreshed one when it is due. */
  async freshToken(): Promise<string> {
    if (!this.session) throw new SignInError('not signed in');
    if (refreshDelayMs(this.session.idToken, Date.now()) > 0) return this.session.idToken;
    return this.refresh();
  }

  /** Leaves for the issuer's login page. */
  async signIn(): Promise<void> {
    const oauth = await this.load();
    const server = await this.discover();
    const pending: PendingSignIn = {
      state: oauth.generateRandomState(),
      nonce: oauth.generateRandomNonce(),
      codeVerifier: oauth.generateRandomCodeVerifier(),
    };
    sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
    const target = new URL(server.authorization_endpoint!);
    target.searchParams.set('client_id', this.config.clientId);
    target.searchParams.set('redirect_uri', this.redirectUri);
    target.searchParams.set('response_type', 'code');
    target.searchParams.set('scope', this.config.scopes.join(' '));
    target.searchParams.set('state', pending.state);
    target.searchParams.set('nonce', pending.nonce);
    target.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(pending.codeVerifier));
    target.searchParams.set('code_challenge_method', 'S256');
    window.location.assign(target.href);
  }

  /** Forgets the session and signs out at the issuer too, back to this page. */
  async signOut(): Promise<void> {
    const idToken = this.session?.idToken;
    this.forget();
    const server = await this.discover();
    let target: URL | undefined;
    if (server.end_session_endpoint) {
      target = new URL(server.end_session_endpoint);
      if (idToken) target.searchParams.set('id_token_hint', idToken);
      target.searchParams.set('client_id', this.config.clientId);
      target.searchParams.set('post_logout_redirect_uri', this.redirectUri);
    } else if (server.authorization_endpoint?.endsWith('/oauth2/authorize')) {
      // Cognito's managed login publishes no end_session_endpoint; its sign-out is /logout.
      target = new URL('/logout', server.authorization_endpoint);
      target.searchParams.set('client_id', this.config.clientId);
      target.searchParams.set('logout_uri', this.redirectUri);
    }
    window.location.assign(target?.href ?? this.redirectUri);
  }

  private async load(): Promise<OAuth> {
    this.oauth ??= await import('oauth4webapi');
    return this.oauth;
  }

  /** Request options: plain http only for an issuer on this machine (the local provider). */
  private requestOptions(oauth: OAuth): Record<symbol, boolean> {
    const { protocol, hostname } = new URL(this.config.issuer);
    const loopback = protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(hostname);
    return loopback ? { [oauth.allowInsecureRequests]: true } : {};
  }

  private async discover(): Promise<AuthorizationServer> {
    if (this.server) return this.server;
    const oauth = await this.load();
    const issuer = new URL(this.config.issuer);
    try {
      const response = await oauth.discoveryRequest(issuer, { algorithm: 'oidc', ...this.requestOptions(oauth) });
      this.server = await oauth.processDiscoveryResponse(issuer, response);
    } catch (error) {
      throw new SignInError(`cannot reach the sign-in service ${issuer.origin}`, { cause: error });
    }
    return this.server;
  }

  private async finishSignIn(callback: URL): Promise<void> {
    const oauth = await this.load();
    const server = await this.discover();
    const pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) ?? 'null') as PendingSignIn | null;
    sessionStorage.removeItem(PENDING_KEY);
    if (!pending) throw new SignInError('this sign-in was not started here (or was already used); sign in again');
    const client = { client_id: this.config.clientId };
    try {
      const params = oauth.validateAuthResponse(server, client, callback, pending.state);
      const response = await oauth.authorizationCodeGrantRequest(
        server,
        client,
        oauth.None(),
        params,
        this.redirectUri,
        pending.codeVerifier,
        this.requestOptions(oauth),
      );
      const result = await oauth.processAuthorizationCodeResponse(server, client, response, { expectedNonce: pending.nonce, requireIdToken: true });
      this.store({ idToken: result.id_token!, refreshToken: result.refresh_token });
    } catch (error) {
      throw new SignInError(`sign-in failed: ${errorMessage(error)}`, { cause: error });
    }
  }

  /** Refreshes once at a time; rejects on a network failure, ends the session on a refusal. */
  private refresh(): Promise<string> {
    this.refreshing ??= this.doRefresh().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async doRefresh(): Promise<string> {
    const session = this.session;
    if (!session?.refreshToken) {
      this.end('your sign-in has expired');
      throw new SignInError('no refresh token');
    }
    const oauth = await this.load();
    const server = await this.discover();
    const client = { client_id: this.config.clientId };
    let response: Response;
    try {
      response = await oauth.refreshTokenGrantRequest(server, client, oauth.None(), session.refreshToken, this.requestOptions(oauth));
    } catch (error) {
      throw new SignInError('cannot reach the sign-in service to refresh the token', { cause: error });
    }
    try {
      const result = await oauth.processRefreshTokenResponse(server, client, response);
      if (!result.id_token) throw new SignInError('the refresh gave no ID token');
      // Cognito does not rotate refresh tokens: keep the old one when none comes back.
      this.store({ idToken: result.id_token, refreshToken: result.refresh_token ?? session.refreshToken });
    } catch (error) {
      this.end('your sign-in has ended (the refresh was refused)');
      throw error;
    }
    this.scheduleRefresh();
    for (const handler of this.refreshedHandlers) handler();
    return this.session!.idToken;
  }

  private scheduleRefresh(): void {
    clearTimeout(this.refreshTimer);
    if (!this.session) return;
    this.refreshTimer = setTimeout(() => {
      this.refresh().catch(() => {
        if (this.session) this.refreshTimer = setTimeout(() => this.scheduleRefresh(), REFRESH_RETRY_MS);
      });
    }, refreshDelayMs(this.session.idToken, Date.now()));
  }

  private end(reason: string): void {
    this.forget();
    for (const handler of this.endedHandlers) handler(reason);
  }

  private forget(): void {
    clearTimeout(this.refreshTimer);
    this.session = undefined;
    sessionStorage.removeItem(SESSION_KEY);
  }

  private store(session: StoredSession): void {
    this.session = session;
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  }

  private loadSession(): StoredSession | undefined {
    try {
      const stored = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? 'null') as StoredSession | null;
      return stored && typeof stored.idToken === 'string' ? stored : undefined;
    } catch {
      return undefined;
    }
  }
}
