/**
 * Who is signed in, in the header, and how the page gets its tokens: through {@link SignIn} when
 * config.json names an issuer, else the fixed token (a script's `?token=`, taken out of the
 * address bar at once). Also says why the server refused a connection, and offers sign-in again.
 */
import { errorMessage } from '../../lambdas/core/errors';
import { decodeToken } from '../../lambdas/core/token-claims';
import { SignIn, type SignedInUser } from './auth';
import type { DashboardConfig } from './config';
import { withoutToken } from './config';
import { el } from './dom';
import { probeHandshake, refusalReason, tokenProblem } from './token-status';
import { socketUrl, type LiveSocket, type LiveSocketOptions } from './ws-client';

/** The header's session area: user, sites, sign-out, and a notice when sign-in is needed. */
export class SessionPanel {
  readonly root: HTMLElement;
  private readonly user = el('span', { class: 'session-user', 'data-testid': 'signed-in-user' });
  private readonly sites = el('span', { class: 'session-sites', 'data-testid': 'signed-in-sites' });
  private readonly signOut = el('button', { type: 'button', class: 'small', 'data-testid': 'sign-out', hidden: '' }, 'Sign out');
  private readonly notice = el('div', { class: 'session-notice', role: 'alert', 'data-testid': 'auth-notice', hidden: '' });

  constructor() {
    this.root = el('div', { class: 'session', 'data-testid': 'session' }, this.user, this.sites, this.signOut, this.notice);
  }

  /** Names the user and their sites; `signOut` adds the sign-out button. */
  showUser(user: SignedInUser | undefined, signOut?: () => void): void {
    this.user.textContent = user ? user.name : '';
    this.user.title = user ? `subject ${user.sub}` : '';
    this.sites.textContent = !user ? '' : user.sites.includes('*') ? 'all sites' : user.sites.length ? `sites: ${user.sites.join(', ')}` : 'no sites';
    this.signOut.hidden = !signOut;
    this.signOut.onclick = signOut ? () => signOut() : null;
  }

  /** Shows why the page is not connected, with a button that acts on it. */
  showNotice(message: string, action?: { label: string; run: () => void }): void {
    this.notice.replaceChildren(el('span', { 'data-testid': 'auth-notice-text' }, message));
    if (action) {
      const button = el('button', { type: 'button', class: 'small', 'data-testid': 'sign-in-again' }, action.label);
      button.onclick = () => action.run();
      this.notice.append(button);
    }
    this.notice.hidden = false;
  }

  hideNotice(): void {
    this.notice.hidden = true;
  }
}

/** What {@link startSession} gives the live socket. */
export interface SessionHooks {
  readonly url: LiveSocketOptions['url'];
  readonly probe: LiveSocketOptions['probe'];
  /** Wires token refresh, session end and refusals to the socket and the panel. */
  attach(socket: LiveSocket): void;
}

function userOfToken(token: string, sitesClaim = 'sites'): SignedInUser | undefined {
  const claims = decodeToken(token)?.claims;
  if (!claims || typeof claims.sub !== 'string') return undefined;
  const raw = claims[sitesClaim];
  const sites = (Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : []).filter((s): s is string => typeof s === 'string');
  return { sub: claims.sub, name: typeof claims.name === 'string' ? claims.name : claims.sub, sites };
}

/**
 * Unexplained refusals (the token looks right: another key, a withdrawn user, or a throttled or
 * failing server) retried with backoff before the page gives up and says so.
 */
const UNEXPLAINED_RETRIES = 3;

/**
 * The socket's probe: the host's answer, except that a refusal the token does not explain counts
 * as a passing failure a few times, so a throttled handshake is not taken for a refused sign-in.
 */
function refusalProbe(wsUrl: string, token: () => string | undefined, expect: { issuer?: string; clientId?: string }): SessionHooks['probe'] {
  let unexplained = 0;
  return async () => {
    const verdict = await probeHandshake(wsUrl);
    if (verdict === 'refused' && !tokenProblem(token(), expect, Date.now()) && ++unexplained <= UNEXPLAINED_RETRIES) return 'network';
    if (verdict === 'refused') unexplained = 0;
    return verdict;
  };
}

/**
 * Signs in (or resumes the session) and returns the socket's hooks; undefined when the browser is
 * leaving for the login page or sign-in failed (the panel then says so).
 */
export async function startSession(config: DashboardConfig, panel: SessionPanel): Promise<SessionHooks | undefined> {
  const clean = withoutToken(window.location.href);
  if (clean) window.history.replaceState(null, '', clean);
  const auth = config.auth;
  const expect = { issuer: auth?.issuer, clientId: auth?.clientId };

  if (config.token || !auth) {
    const token = config.token;
    if (token) panel.showUser(userOfToken(token, auth?.sitesClaim));
    return {
      url: socketUrl(config.wsUrl, token),
      probe: refusalProbe(config.wsUrl, () => token, expect),
      attach(socket) {
        socket.on('refused', () =>
          panel.showNotice(`Connection refused: ${refusalReason(token, expect, Date.now())}.`, {
            label: 'Retry',
            run: () => {
              panel.hideNotice();
              socket.connect();
            },
          }),
        );
      },
    };
  }

  const signIn = new SignIn(auth);
  const again = { label: 'Sign in again', run: () => void signIn.signIn() };
  try {
    if (!(await signIn.start())) return undefined;
  } catch (error) {
    panel.showNotice(`Not signed in: ${errorMessage(error)}.`, again);
    return undefined;
  }
  const signOut = () => void signIn.signOut();
  panel.showUser(signIn.user, signOut);
  return {
    url: async () => socketUrl(config.wsUrl, await signIn.freshToken()),
    probe: refusalProbe(config.wsUrl, () => signIn.token, expect),
    attach(socket) {
      // A fresh token moves the connection to a new socket that carries it: a user removed or
      // given other sites is seen by the server within one token lifetime.
      signIn.onRefreshed(() => {
        panel.showUser(signIn.user, signOut);
        socket.renew();
      });
      signIn.onEnded((reason) => {
        socket.disconnect();
        panel.showUser(undefined);
        panel.showNotice(`Signed out: ${reason}.`, again);
      });
      socket.on('refused', () =>
        panel.showNotice(`The server refused the connection: ${refusalReason(signIn.token, auth, Date.now())}.`, again),
      );
    },
  };
}
