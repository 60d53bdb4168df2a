/**
 * The API, stage and authorizer context of AWS's documented example events
 * (test/fixtures/apigw/), for building test events with local/apigw-events.ts on any connection.
 */
import type { WsEventSource } from '../../local/apigw-events';
import connectFixture from '../fixtures/apigw/connect.json';

/**
 * An AWS-like event source for `connectionId`, authorized as the fixture's operator-7 of plant-a,
 * connected now: routes derive the expiry of a connection's index entries from `connectedAt`.
 */
export function awsSource(connectionId: string, overrides: Partial<WsEventSource> = {}): WsEventSource {
  const { apiId, stage, domainName, authorizer } = connectFixture.requestContext;
  return { apiId, stage, domainName, connectionId, connectedAt: Date.now(), authorizer: { ...authorizer }, ...overrides };
}

/** The subscribe body of the fixture: device data and critical alerts of pumps on plant-a/line-2. */
export const SUBSCRIBE_BODY =
  '{"action":"subscribe","id":"s1","filter":{"types":["device_data","alert"],"deviceIds":[],"deviceTypes":["pump"],"locations":["plant-a/line-2"],"alertLevels":["critical"]}}';
