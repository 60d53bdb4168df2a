/**
 * Physical names for the few resources whose names must be unique per account rather than per
 * region (CloudFront response headers policies and origin access controls). Without the region
 * in the name, the same stack name deployed to a second region fails with 409 and rolls back.
 */
import { createHash } from 'node:crypto';
import { Stack, Token } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/** Longest region name AWS uses today is 14 characters; leave room for longer ones. */
const REGION_BUDGET = 20;

/**
 * `<stackName>-<region>-<purpose>`, at most `maxLength` characters: a stack name that does not
 * fit is cut and suffixed with a hash of the whole name, so two long names stay distinct.
 */
export function accountUniqueName(scope: IConstruct, purpose: string, maxLength: number): string {
  const stack = Stack.of(scope);
  const regionLength = Token.isUnresolved(stack.region) ? REGION_BUDGET : stack.region.length;
  const room = maxLength - regionLength - purpose.length - 2;
  let name = stack.stackName;
  if (name.length > room) {
    const hash = createHash('sha256').update(name).digest('hex').slice(0, 8);
    name = `${name.slice(0, room - hash.length - 1)}-${hash}`;
  }
  return `${name}-${stack.region}-${purpose}`;
}
