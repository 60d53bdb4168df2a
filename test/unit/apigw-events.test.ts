/**
 * The events the local gateway and the tests build have the shape of AWS's documented examples
 * (test/fixtures/apigw/): the same request-context fields, no `messageId` outside MESSAGE events,
 * and a fresh object on every call, so a test that changes one cannot change the next.
 */
import { connectEvent, disconnectEvent, messageEvent } from '../../local/apigw-events';
import connectFixture from '../fixtures/apigw/connect.json';
import disconnectFixture from '../fixtures/apigw/disconnect.json';
import subscribeFixture from '../fixtures/apigw/message-subscribe.json';
import { awsSource, SUBSCRIBE_BODY } from '../support/apigw';

/** Fields a local gateway has no value for: the caller's network identity and AWS's own headers. */
const AWS_ONLY = new Set(['identity', 'multiValueHeaders', 'multiValueQueryStringParameters', 'integrationLatency']);

function keys(value: object): string[] {
  return Object.keys(value).filter((key) => !AWS_ONLY.has(key)).sort();
}

describe('API Gateway WebSocket event builders', () => {
  const source = awsSource('CJ8wVdZ4IAMCJ3w=');

  it('build $connect with the fields of AWS’s example', () => {
    const event = connectEvent(source, { headers: { Host: 'h' }, query: { token: '<jwt>' } });
    expect(keys(event)).toEqual(keys(connectFixture));
    expect(keys(event.requestContext)).toEqual(keys(connectFixture.requestContext));
    expect(event.requestContext).toMatchObject({ eventType: 'CONNECT', routeKey: '$connect', connectionId: 'CJ8wVdZ4IAMCJ3w=' });
    expect(event.queryStringParameters).toEqual({ token: '<jwt>' });
  });

  it('build a message route with a messageId, as only MESSAGE events have', () => {
    const event = messageEvent(source, 'subscribe', SUBSCRIBE_BODY);
    expect(keys(event)).toEqual(keys(subscribeFixture));
    expect(keys(event.requestContext)).toEqual([...keys(subscribeFixture.requestContext), 'authorizer'].sort());
    expect(event.body).toBe(subscribeFixture.body);
    expect(event.requestContext.messageId).toEqual(expect.any(String));
  });

  it('build $disconnect with the close code and reason', () => {
    const event = disconnectEvent(source, 1001, 'Going away');
    expect(keys(event.requestContext)).toEqual([...keys(disconnectFixture.requestContext), 'authorizer'].sort());
    expect(event.requestContext).toMatchObject({ eventType: 'DISCONNECT', disconnectStatusCode: 1001, disconnectReason: 'Going away' });
    expect('messageId' in event.requestContext).toBe(false);
  });

  it('leave out an empty query string, as AWS does', () => {
    expect('queryStringParameters' in connectEvent(source, { query: {} })).toBe(false);
  });

  it('return a fresh event, authorizer context included, on every call', () => {
    const first = messageEvent(source, 'ping', '{}');
    first.requestContext.authorizer!.principalId = 'intruder';
    expect(messageEvent(source, 'ping', '{}').requestContext.authorizer).toMatchObject({ principalId: 'operator-7' });
    expect(first.requestContext.requestId).not.toBe(messageEvent(source, 'ping', '{}').requestContext.requestId);
  });
});
