/**
 * A local endpoint that speaks Lambda's synchronous Invoke API, for the real `@aws-sdk/client-lambda`
 * to call: `POST /2015-03-31/functions/{name}/invocations` runs a handler in this process and answers
 * as Lambda does (docs of Invoke and of Lambda's quotas):
 * - the handler's result as the JSON payload, status 200;
 * - a handler that throws: status 200, header `X-Amz-Function-Error: Unhandled`, payload
 *   `{"errorType","errorMessage","trace"}`;
 * - a result over the synchronous response limit (6 MB): the same, with errorType
 *   `Function.ResponseSizeTooLarge`;
 * - a request over 6 MB: 413 `RequestTooLargeException`; an unknown function: 404
 *   `ResourceNotFoundException`.
 * It records each response's size, so tests can show what crossed the wire.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** Lambda's synchronous invocation payload limit, request and response, in bytes. */
export const LAMBDA_PAYLOAD_LIMIT = 6_291_556;

type Handler = (event: unknown) => Promise<unknown>;

/** A running endpoint; `endpoint` goes to the Lambda client's `endpoint`. */
export interface LambdaInvokeServer {
  endpoint: string;
  /** Payload bytes of each response, in order. */
  responseBytes: number[];
  close(): Promise<void>;
}

function send(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...headers });
  res.end(body);
}

/** Starts an endpoint on a free loopback port serving these functions by name. */
export async function startLambdaInvokeServer(functions: Record<string, Handler>): Promise<LambdaInvokeServer> {
  const responseBytes: number[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      void (async () => {
        const match = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/.exec(req.url?.split('?')[0] ?? '');
        const handler = match ? functions[decodeURIComponent(match[1]!)] : undefined;
        if (req.method !== 'POST' || !match || !handler) {
          send(res, 404, JSON.stringify({ Type: 'User', message: `Function not found: ${req.url}` }), { 'x-amzn-errortype': 'ResourceNotFoundException' });
          return;
        }
        const body = Buffer.concat(chunks);
        if (body.length > LAMBDA_PAYLOAD_LIMIT) {
          send(res, 413, JSON.stringify({ Type: 'User', message: `${body.length} byte payload is too large for the RequestResponse invocation type (limit ${LAMBDA_PAYLOAD_LIMIT} bytes)` }), {
            'x-amzn-errortype': 'RequestTooLargeException',
          });
          return;
        }
        let payload: string;
        let failed = false;
        try {
          const result = await handler(body.length ? JSON.parse(body.toString('utf8')) : {});
          payload = JSON.stringify(result ?? null);
          if (Buffer.byteLength(payload) > LAMBDA_PAYLOAD_LIMIT) {
            failed = true;
            payload = JSON.stringify({
              errorMessage: `Response payload size exceeded maximum allowed payload size (${LAMBDA_PAYLOAD_LIMIT} bytes).`,
              errorType: 'Function.ResponseSizeTooLarge',
            });
          }
        } catch (error) {
          failed = true;
          const e = error instanceof Error ? error : new Error(String(error));
          payload = JSON.stringify({ errorType: e.name, errorMessage: e.message, trace: (e.stack ?? '').split('\n') });
        }
        responseBytes.push(Buffer.byteLength(payload));
        send(res, 200, payload, { 'x-amz-executed-version': '$LATEST', ...(failed ? { 'x-amz-function-error': 'Unhandled' } : {}) });
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    responseBytes,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
