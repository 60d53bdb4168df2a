/**
 * An adversarial run that stays in the suite: several connections send thousands of malformed and
 * hostile messages, generated with fast-check, while a normal client is served. Every bad message
 * gets exactly one error frame with a code of the contract, nothing answers "Internal server error",
 * the normal client gets every record, and the server's heap returns to where it was.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import fc from 'fast-check';
import WebSocket from 'ws';
import { mintToken } from '../../lambdas/core/auth';
import { ERROR_CODES, LIMITS } from '../../lambdas/core/protocol';
import type { LocalRuntime } from '../../local/runtime';
import { startTestRuntime } from '../support/runtime';
import { deviceRecord as reading } from '../support/records';
import { TestClient } from '../support/ws-test-client';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

function liveHeapMb(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 1e6;
}

const secret = 'adversarial-test-secret-0123456789abcdef';
let runtime: LocalRuntime;

beforeAll(async () => {
  runtime = await startTestRuntime({ statusIntervalMs: 0, jwtSecret: secret });
});
afterAll(async () => {
  await runtime.stop();
});

const prototypeNames = ['constructor', '__proto__', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf', '__defineGetter__', 'prototype'];
const name = fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom(...prototypeNames), fc.string({ minLength: 129, maxLength: 200 }));
const hostileFilter = fc.oneof(
  fc.dictionary(fc.oneof(fc.constantFrom('types', 'deviceIds', 'locations', 'deviceTypes', 'alertLevels', 'sites'), name), fc.jsonValue({ maxDepth: 2 })),
  fc.record({ deviceIds: fc.array(name, { maxLength: 120 }) }),
  fc.record({ locations: fc.array(fc.constantFrom('plant-b/line-1', 'plant-z/x'), { minLength: 1, maxLength: 3 }) }),
  fc.jsonValue({ maxDepth: 2 }),
);
/** A message that must be refused: each with the codes it may get. */
const badMessage: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 200 }).filter((text) => {
    try {
      const json = JSON.parse(text) as unknown;
      return typeof json !== 'object' || json === null || Array.isArray(json) || typeof (json as { action?: unknown }).action !== 'string';
    } catch {
      return true;
    }
  }),
  fc.jsonValue({ maxDepth: 3 }).filter((v) => typeof v !== 'object' || v === null || Array.isArray(v)).map((v) => JSON.stringify(v)),
  fc.record({ action: fc.oneof(fc.constantFrom(...prototypeNames, '$default', '$connect', 'publish', 'SUBSCRIBE'), fc.string({ maxLength: 30 })) })
    .filter((m) => !['subscribe', 'unsubscribe', 'ping'].includes(m.action))
    .map((m) => JSON.stringify(m)),
  fc.record({ action: fc.constant('subscribe'), id: name, filter: hostileFilter }).filter((m) => !/^[A-Za-z0-9_.:-]{1,64}$/.test(String(m.id))).map((m) => JSON.stringify(m)),
  fc.record({ action: fc.constant('subscribe'), filter: fc.record({ locations: fc.constant(['plant-b/line-1']) }) }).map((m) => JSON.stringify(m)),
  fc.record({ action: fc.constant('unsubscribe'), id: fc.constantFrom(...prototypeNames.filter((n) => /^[A-Za-z_]+$/.test(n))) }).map((m) => JSON.stringify(m)),
  fc.integer({ min: LIMITS.maxClientMessageBytes + 1, max: 40_000 }).map((size) => JSON.stringify({ action: 'ping', pad: 'x'.repeat(size) })),
);

interface Attacker {
  ws: WebSocket;
  sent: number;
  replies: string[];
}

async function attacker(token: string): Promise<Attacker> {
  const ws = new WebSocket(`${runtime.wsUrl}/?token=${encodeURIComponent(token)}`);
  const state: Attacker = { ws, sent: 0, replies: [] };
  ws.on('message', (data) => state.replies.push(data.toString()));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return state;
}

async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

it('answers thousands of hostile messages from several connections with one error frame each while a normal client is served', async () => {
  const normal = await TestClient.connect(runtime.wsUrl, await mintToken(secret, { sub: 'normal', sites: ['plant-a'] }, '10m'));
  await normal.subscribe('mine', { deviceIds: ['normal-1'] });
  // Warm up every path once, then take the baseline.
  await runtime.publish([{ topic: 'device-data', value: reading('normal-1') }]);
  await normal.barrier();
  const baseline = liveHeapMb();

  const tokens = await Promise.all(
    ['plant-a', '', 'plant-a', ''].map((sites, i) => mintToken(secret, { sub: `attacker-${i}`, sites }, '10m')),
  );
  const attackers = await Promise.all([...tokens, ...tokens].map(attacker));
  const messages = fc.sample(badMessage, { numRuns: 3000, seed: 20261128 });
  let published = 1;
  const feeding = (async () => {
    for (let batch = 0; batch < 30; batch++) {
      await runtime.publish(Array.from({ length: 10 }, () => ({ topic: 'device-data', value: reading('normal-1') })));
      published += 10;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  // Rounds of one burst each per attacker (parsed in full), then a flood (mostly rate_limited).
  let next = 0;
  for (let round = 0; round < 3; round++) {
    for (const a of attackers) {
      for (let i = 0; i < LIMITS.messageBurst && next < messages.length; i++, a.sent++) a.ws.send(messages[next++]);
    }
    await until(() => attackers.every((a) => a.replies.length === a.sent), 60_000, 'replies to a burst');
    await new Promise((resolve) => setTimeout(resolve, (LIMITS.messageBurst / LIMITS.messagesPerSecond) * 1000));
  }
  while (next < messages.length) {
    const a = attackers[next % attackers.length];
    a.ws.send(messages[next++]);
    a.sent++;
  }
  await until(() => attackers.every((a) => a.replies.length === a.sent), 120_000, 'replies to the flood');
  await feeding;
  await normal.barrier();

  expect(next).toBe(3000);
  const codes = new Map<string, number>();
  for (const a of attackers) {
    for (const text of a.replies) {
      const frame = JSON.parse(text) as { type?: string; code?: string };
      expect(frame.type).toBe('error');
      expect(ERROR_CODES).toContain(frame.code);
      codes.set(frame.code!, (codes.get(frame.code!) ?? 0) + 1);
    }
    // The gateway keeps every attacker connected: bad input never closes a socket.
    expect(a.ws.readyState).toBe(WebSocket.OPEN);
  }
  expect(codes.get('bad_request')).toBeGreaterThan(0);
  expect(codes.get('rate_limited')).toBeGreaterThan(0);
  expect(normal.recordsOf('normal-1')).toHaveLength(published);
  expect(new Set(normal.records.map((r) => r.cursor)).size).toBe(published);

  await Promise.all(attackers.map((a) => new Promise((resolve) => {
    a.ws.once('close', resolve);
    a.ws.close();
  })));
  await runtime.gateway.settle();
  const after = liveHeapMb();
  expect(after).toBeLessThan(baseline * 1.2 + 5);
}, 240_000);
