/**
 * GET /health and GET /metrics as deployed: the real AWS SDK clients against loopback servers that
 * answer as the Management API and Secrets Manager do (status, error type header, JSON body).
 * These two services cannot run here, so these stubs stand in for them; nothing else is faked.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { createManagementClient } from '../../lambdas/adapters/clients';
import { managementApiCheck, PROBE_CONNECTION_ID } from '../../lambdas/adapters/health-checks';
import { SecretError, SecretStore } from '../../lambdas/adapters/secrets';
import { ConfigError } from '../../lambdas/core/errors';
import { ENV } from '../../lambdas/config/env-names';
import { createHealthHandler } from '../../lambdas/handlers/health';
import { createMetricsHandler, metricsTokenSource } from '../../lambdas/handlers/metrics';
import { LOCAL_AWS } from '../../local/dynamo';

/** A loopback HTTP server whose answers the test sets; it records each request's method and path. */
async function stubServer() {
  const seen: { method: string; url: string; target?: string }[] = [];
  let answer: { status: number; errorType?: string; body: unknown } = { status: 200, body: {} };
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, target: req.headers['x-amz-target'] as string | undefined });
      const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/x-amz-json-1.1' };
      if (answer.errorType) headers['x-amzn-errortype'] = answer.errorType;
      res.writeHead(answer.status, headers).end(JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    answer: (next: typeof answer) => (answer = next),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const quiet = { error() {} };

describe('GET /health, Management API check', () => {
  let api: Awaited<ReturnType<typeof stubServer>>;
  let health: ReturnType<typeof createHealthHandler>;
  beforeAll(async () => {
    api = await stubServer();
    const client = createManagementClient(`${api.url}/live`, LOCAL_AWS);
    health = createHealthHandler({ managementApi: managementApiCheck(client) });
  });
  afterAll(() => api.close());

  const call = async () => {
    const res = (await health()) as { statusCode: number; body: string };
    return { status: res.statusCode, body: JSON.parse(res.body) };
  };

  it('is up when the Management API answers 410 for the probe id (authorized, connection unknown)', async () => {
    api.answer({ status: 410, errorType: 'GoneException', body: { message: 'gone' } });
    const res = await call();
    expect(res.status).toBe(200);
    expect(res.body.checks.managementApi.ok).toBe(true);
    // A real connection id's shape, URL-encoded as the SDK sends it.
    expect(api.seen.at(-1)).toEqual({ method: 'GET', url: `/live/@connections/${encodeURIComponent(PROBE_CONNECTION_ID)}`, target: undefined });
  });

  it('is down (503) on 403, naming the missing permission', async () => {
    api.answer({ status: 403, errorType: 'ForbiddenException', body: { message: 'Forbidden' } });
    const res = await call();
    expect(res.status).toBe(503);
    expect(res.body.status).toBe('unavailable');
    expect(res.body.checks.managementApi).toMatchObject({ ok: false, error: expect.stringMatching(/403.*execute-api:ManageConnections/) });
  });

  it('is down on 400 (a probe id API Gateway does not accept proves nothing)', async () => {
    api.answer({ status: 400, errorType: 'BadRequestException', body: { message: 'Invalid connectionId' } });
    expect((await call()).status).toBe(503);
  });
});

describe('GET /metrics on AWS', () => {
  const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:metrics-AbCdEf';
  const TOKEN = 'scrape-token-0123456789';
  const onLambda = { AWS_LAMBDA_FUNCTION_NAME: 'metrics', [ENV.metricsTokenSecretArn]: SECRET_ARN };
  let sm: Awaited<ReturnType<typeof stubServer>>;
  let client: SecretsManagerClient;
  beforeAll(async () => {
    sm = await stubServer();
    // maxAttempts 1: the SDK's own retries would hide the failed fetch the handler must survive.
    client = new SecretsManagerClient({ endpoint: sm.url, maxAttempts: 1, ...LOCAL_AWS });
  });
  afterAll(async () => {
    client.destroy();
    await sm.close();
  });

  const secretOk = () => sm.answer({ status: 200, body: { ARN: SECRET_ARN, Name: 'metrics', SecretString: TOKEN } });
  const build = () =>
    createMetricsHandler({
      read: async () => new Map([['websocket_connections', 3]]),
      token: metricsTokenSource(() => new SecretStore(client), onLambda),
      log: quiet,
    });
  const scrape = async (handler: ReturnType<typeof build>, authorization?: string) =>
    (await handler({ headers: authorization ? { authorization } : {} })) as { statusCode: number; body: string };

  it('answers 401 without a token, without reading the secret', async () => {
    secretOk();
    const before = sm.seen.length;
    const res = await scrape(build());
    expect(res.statusCode).toBe(401);
    expect(sm.seen.length).toBe(before);
  });

  it('answers 401 to a wrong token and 200 with the metrics to the right one', async () => {
    secretOk();
    const handler = build();
    expect((await scrape(handler, 'Bearer nope')).statusCode).toBe(401);
    expect((await scrape(handler, `Basic ${TOKEN}`)).statusCode).toBe(401);
    const res = await scrape(handler, `Bearer ${TOKEN}`);
    expect(res.statusCode).toBe(200);
    expect(res.body).toMatch(/^websocket_connections 3$/m);
    expect(sm.seen.at(-1)!.target).toBe('secretsmanager.GetSecretValue');
  });

  it('answers 503 while the secret cannot be read, then 200 once it can: a failure is not cached', async () => {
    const handler = build();
    sm.answer({ status: 400, errorType: 'ThrottlingException', body: { __type: 'ThrottlingException', message: 'Rate exceeded' } });
    expect((await scrape(handler, `Bearer ${TOKEN}`)).statusCode).toBe(503);
    secretOk();
    expect((await scrape(handler, `Bearer ${TOKEN}`)).statusCode).toBe(200);
  });

  it('fails closed when the secret holds binary data instead of a string', async () => {
    sm.answer({ status: 200, body: { ARN: SECRET_ARN, Name: 'metrics', SecretBinary: Buffer.from(TOKEN).toString('base64') } });
    const handler = build();
    expect((await scrape(handler, `Bearer ${TOKEN}`)).statusCode).toBe(503);
    expect((await scrape(handler)).statusCode).toBe(401);
  });

  it('refuses to start on Lambda without a token source, and is open only off Lambda', () => {
    const store = () => new SecretStore(client);
    expect(() => metricsTokenSource(store, { AWS_LAMBDA_FUNCTION_NAME: 'metrics' })).toThrow(ConfigError);
    expect(() => metricsTokenSource(store, { AWS_LAMBDA_FUNCTION_NAME: 'metrics' })).toThrow(ENV.metricsTokenSecretArn);
    expect(metricsTokenSource(store, {})).toBeUndefined();
  });
});

describe('SecretStore', () => {
  let sm: Awaited<ReturnType<typeof stubServer>>;
  let client: SecretsManagerClient;
  beforeAll(async () => {
    sm = await stubServer();
    client = new SecretsManagerClient({ endpoint: sm.url, maxAttempts: 1, ...LOCAL_AWS });
  });
  afterAll(async () => {
    client.destroy();
    await sm.close();
  });

  it('serves a fetched value until it expires, sharing one fetch among concurrent callers', async () => {
    let now = 0;
    const store = new SecretStore(client, { maxAgeMs: 1000, now: () => now });
    sm.answer({ status: 200, body: { SecretString: ' v1 ' } });
    const before = sm.seen.length;
    expect(await Promise.all([store.getString('s'), store.getString('s'), store.getString('s')])).toEqual(['v1', 'v1', 'v1']);
    expect(sm.seen.length - before).toBe(1);
    sm.answer({ status: 200, body: { SecretString: 'v2' } });
    now = 999;
    expect(await store.getString('s')).toBe('v1');
    now = 1000;
    expect(await store.getString('s')).toBe('v2');
    expect(sm.seen.length - before).toBe(2);
  });

  it('wraps a failure with its cause and the secret id, and tries again on the next call', async () => {
    const store = new SecretStore(client);
    sm.answer({ status: 400, errorType: 'ResourceNotFoundException', body: { __type: 'ResourceNotFoundException', message: 'no such secret' } });
    const error = await store.getString('missing').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SecretError);
    expect(error).toMatchObject({ secretId: 'missing', message: expect.stringContaining('no such secret') });
    expect((error as SecretError).cause).toMatchObject({ name: 'ResourceNotFoundException' });
    sm.answer({ status: 200, body: { SecretString: 'found' } });
    expect(await store.getString('missing')).toBe('found');
  });
});
