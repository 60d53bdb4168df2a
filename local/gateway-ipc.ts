/**
 * What the local gateway's two halves say to each other: the socket side ({@link GatewayServer},
 * in a child process by default) asks the handler side (the runtime's process, where the Lambdas,
 * the SDK and the stream handler run) to invoke a handler with an event it built, and reports its
 * open connections and Management API counts. One module, so that both ends read the same types.
 *
 * @module
 */
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from 'aws-lambda';
import type { WebSocketEvent, WebSocketResult } from '../lambdas/handlers/types';

/** Management API calls refused and made, for benchmarks and tests. */
export interface ManagementStats {
  posts: number;
  throttled: number;
}

/** One handler invocation the socket side asks for, with the event API Gateway would send. */
export type Invocation =
  | { kind: 'authorizer'; event: APIGatewayRequestAuthorizerEvent }
  | { kind: 'connect' | 'disconnect'; event: WebSocketEvent }
  | { kind: 'route'; routeKey: string; event: WebSocketEvent };

/** What a handler returned: an authorizer's policy, or a route's result (void: nothing to send). */
export type InvocationResult = APIGatewayAuthorizerResult | WebSocketResult | undefined;

/**
 * Everything the socket side needs, plain data so that it crosses to the child as it is. Each
 * option's default and unit live on {@link GatewayOptions} in ./gateway.ts.
 */
export interface GatewaySettings {
  port: number;
  host: string;
  urlHost: string;
  stage: string;
  idleTimeoutMs: number;
  maxConnectionMs: number;
  maxMessageBytes: number;
  maxBufferedBytes: number;
  allowedHosts: readonly string[];
  postLatencyMs: number;
  postQuota: number;
  listenBacklog: number;
  maxPendingHandshakes: number;
  /** The Management API's path segment. */
  managementSecret: string;
  /** Route keys that have a handler besides `$default`. */
  routeKeys: readonly string[];
  /** Whether $connect goes through an authorizer first. */
  authorizer: boolean;
  /** Whether the parent wants log lines (else the child does not send them). */
  log: boolean;
}

/** The socket side's view of itself, answered to {@link ParentMessage} `query`. */
export interface GatewayState {
  /** Handler invocations and per-connection queues not yet finished. */
  pending: number;
  /** Open sockets. */
  open: number;
  stats: ManagementStats;
}

/**
 * One invocation asked for, by its id: the call whole, or a message route's call with only the
 * parts of its `requestContext` that differ from the connection's previous message (ids, times),
 * which the parent completes from that one: about a third of the bytes to write and parse.
 */
export type InvocationRequest =
  | { id: number; call: Invocation }
  | {
      id: number;
      message: {
        routeKey: string;
        connectionId: string;
        /** The `requestContext` fields that changed. */
        changed: Record<string, unknown>;
        body?: string;
        isBase64Encoded: boolean;
      };
    };

/** How the invocation `id` ended: its value, or its error's message. */
export interface InvocationOutcome {
  id: number;
  value?: InvocationResult;
  error?: string;
}

/**
 * Parent to child. Results travel in batches, as invocations do: every result that finished in
 * one turn of the parent's loop crosses in one message.
 */
export type ParentMessage =
  | { t: 'start'; settings: GatewaySettings }
  | { t: 'results'; results: InvocationOutcome[] }
  | { t: 'query'; id: number }
  | { t: 'stop' };

/**
 * Child to parent. Invocations travel in batches: every message that one turn of the child's loop
 * read (a flood brings dozens at once) crosses in one IPC message, not one each, since each
 * crossing costs both processes a system call and a wake-up.
 */
export type ChildMessage =
  | { t: 'listening'; port: number }
  | { t: 'failed'; error: string; code?: string }
  | { t: 'invoke'; calls: InvocationRequest[] }
  | { t: 'open'; count: number }
  | { t: 'stats'; stats: ManagementStats }
  | { t: 'state'; id: number; state: GatewayState }
  | { t: 'log'; line: string }
  | { t: 'stopped' };
