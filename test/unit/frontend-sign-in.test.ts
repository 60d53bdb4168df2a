/**
 * The page's side of sign-in without a browser: config.json's `auth`, the `?token=` kept out of
 * the address bar, when tokens are refreshed, how a refusal is explained, and the live socket's
 * hooks (a fresh URL per handshake, renewal on demand, refusals that stop the retries). The
 * OAuth exchange itself runs in Chromium against the real provider (test/e2e/sign-in.test.ts).
 */
import type { NormalisedFilter, ServerFrame } from '../../lambdas/core/protocol';
import { resolveConfig, withoutToken } from '../../frontend/src/config';
import { refreshDelayMs, refusalReason } from '../../frontend/src/token-status';
import { LiveSocket } from '../../frontend/src/ws-client';
import { ScriptedSocket } from '../support/scripted-socket';

const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
const jwt = (claims: object, header: object = { alg: 'RS256', kid: 'k' }) => `${b64(header)}.${b64(claims)}.c2ln`;
const NOW = 1_800_000_000_000;
const nowS = NOW / 1000;
const ISSUER = 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_X';

describe('config.json', () => {
  const auth = { issuer: ISSUER, clientId: 'c1', scopes: ['openid', 'email'], sitesClaim: 'custom:sites' };

  it('reads the sign-in settings, and a ?token= takes their place', () => {
    expect(resolveConfig({ wsUrl: 'wss://a/live', auth }, 'https://d.example/')).toEqual({ wsUrl: 'wss://a/live', auth });
    expect(resolveConfig({ wsUrl: 'wss://a/live', auth }, 'https://d.example/?token=t1')).toEqual({ wsUrl: 'wss://a/live', auth, token: 't1' });
  });

  it.each([
    [{ issuer: 'ftp://x', clientId: 'c' }, /auth.issuer/],
    [{ issuer: ISSUER, clientId: '' }, /auth.clientId/],
    [{ issuer: ISSUER, clientId: 'c', scopes: ['email'] }, /openid/],
    [{ issuer: ISSUER, clientId: 'c', scopes: 'openid' }, /auth.scopes/],
    [{ issuer: ISSUER, clientId: 'c', sitesClaim: 7 }, /sitesClaim/],
    [null, /auth.issuer/],
  ])('refuses auth %j, saying which field', (bad, message) => {
    expect(() => resolveConfig({ wsUrl: 'wss://a/live', auth: bad }, 'https://d.example/')).toThrow(message);
  });

  it('gives the page URL without its token, keeping everything else', () => {
    expect(withoutToken('https://d.example/?token=secret&view=2#x')).toBe('https://d.example/?view=2#x');
    expect(withoutToken('https://d.example/?view=2')).toBeUndefined();
  });
});

describe('token timing and refusals', () => {
  it('refreshes a third of the lifetime ahead, at most 5 minutes ahead, and at once when due', () => {
    expect(refreshDelayMs(jwt({ iat: nowS, exp: nowS + 3600 }), NOW)).toBe(3300_000);
    expect(refreshDelayMs(jwt({ iat: nowS, exp: nowS + 6 }), NOW)).toBe(4000);
    expect(refreshDelayMs(jwt({ iat: nowS - 3600, exp: nowS + 60 }), NOW)).toBe(0);
    expect(refreshDelayMs(jwt({ sub: 'x' }), NOW)).toBe(0);
    expect(refreshDelayMs('garbage', NOW)).toBe(0);
  });

  const good = { sub: 'u', iss: ISSUER, aud: 'c1', token_use: 'id', exp: nowS + 600 };
  it.each([
    ['no token', undefined, /no token/],
    ['garbage', 'not-a-jwt', /not a JWT/],
    ['alg none', jwt(good, { alg: 'none' }), /not signed/],
    ['expired', jwt({ ...good, exp: nowS - 1 }), /expired/],
    ['no exp', jwt({ ...good, exp: undefined }), /no expiry/],
    ['another issuer', jwt({ ...good, iss: 'https://evil.example' }), /another issuer/],
    ['another client', jwt({ ...good, aud: ['c2'] }), /another client/],
    ['an access token', jwt({ ...good, token_use: 'access' }), /access token/],
    ['nothing the page can see (another key, or access withdrawn)', jwt(good), /key this server does not trust, or your access was withdrawn/],
  ])('explains a refusal of %s', (_name, token, reason) => {
    expect(refusalReason(token, { issuer: ISSUER, clientId: 'c1' }, NOW)).toMatch(reason);
  });
});

const CONFIRMED: NormalisedFilter = { types: ['device_data'], deviceIds: [], deviceTypes: [], locations: [], alertLevels: [], sites: ['*'] };
const reading = (cursor: string): ServerFrame => ({
  type: 'device_data',
  cursor,
  timestamp: 1,
  data: { deviceId: 'm-1', deviceType: 'meter', location: 'plant-a/l', status: 'online', timestamp: 1, metrics: { v: 1 } },
});

/** Lets pending promise callbacks run (the URL function and the probe are asynchronous). */
const settle = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

describe('live socket hooks', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  function setup(probe?: () => Promise<'refused' | 'network'>) {
    const sockets: ScriptedSocket[] = [];
    let token = 0;
    const client = new LiveSocket({
      url: async () => `ws://gw/?token=t${++token}`,
      probe,
      random: () => 0.5,
      createSocket: (url) => {
        const socket = new ScriptedSocket(url, CONFIRMED);
        sockets.push(socket);
        return socket;
      },
    });
    const records: string[] = [];
    client.on('device_data', (frame) => records.push(frame.cursor!));
    return { client, sockets, records };
  }

  it('asks for a fresh URL for every handshake, and renew() switches sockets losing and repeating nothing', async () => {
    const { client, sockets, records } = setup();
    client.subscribe({}, 's1');
    client.connect();
    await settle();
    expect(sockets.map((s) => s.url)).toEqual(['ws://gw/?token=t1']);
    sockets[0].open();
    sockets[0].confirmAll();
    sockets[0].receive(reading('d:0:1'));

    client.renew();
    await settle();
    expect(sockets[1].url).toBe('ws://gw/?token=t2');
    sockets[1].open();
    // Both sockets carry the records around the switch.
    sockets[0].receive(reading('d:0:2'));
    sockets[1].receive(reading('d:0:2'));
    sockets[1].confirmAll();
    expect(sockets[0].closed).toEqual({ code: 1000, reason: 'renewed' });
    sockets[1].receive(reading('d:0:3'));
    expect(records).toEqual(['d:0:1', 'd:0:2', 'd:0:3']);

    sockets[1].drop();
    jest.advanceTimersByTime(1000);
    await settle();
    expect(sockets[2].url).toBe('ws://gw/?token=t3');
  });

  it('stops retrying and says so when the probe finds the handshake refused', async () => {
    const { client, sockets } = setup(async () => 'refused');
    const refused = jest.fn();
    client.on('refused', refused);
    client.connect();
    await settle();
    sockets[0].drop();
    await settle();
    expect(client.state.status).toBe('refused');
    expect(refused).toHaveBeenCalledTimes(1);
    jest.advanceTimersByTime(120_000);
    await settle();
    expect(sockets).toHaveLength(1);
    // connect() tries again (after a new sign-in, for example).
    client.connect();
    await settle();
    expect(sockets).toHaveLength(2);
  });

  it('keeps retrying when the probe finds the network down', async () => {
    const { client, sockets } = setup(async () => 'network');
    client.connect();
    await settle();
    sockets[0].drop();
    await settle();
    expect(client.state.status).toBe('reconnecting');
    jest.advanceTimersByTime(1000);
    await settle();
    expect(sockets).toHaveLength(2);
  });

  it('does not probe a socket that had opened and later dropped', async () => {
    const probe = jest.fn(async () => 'refused' as const);
    const { client, sockets } = setup(probe);
    client.connect();
    await settle();
    sockets[0].open();
    sockets[0].drop();
    await settle();
    expect(probe).not.toHaveBeenCalled();
    expect(client.state.status).toBe('reconnecting');
  });
});
