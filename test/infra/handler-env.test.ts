/**
 * Each deployed function starts with exactly the environment the stack gives it: its handler is
 * built (as on a cold start) with only those variables set, so a handler that reads a variable
 * its function lacks fails here, not on its first request in AWS. Both the defaults (no replay
 * reader: nothing tells them how to reach the brokers) and a stack with one.
 */
import { HANDLER_NAMES, type HandlerName } from '../../infra/lambda-bundling';
import { FUNCTIONS, REPLAY_CONTEXT, REPLAY_FUNCTION, buildStack } from './stack-fixture';

type Resources = Record<string, { Type: string; Properties: { Environment?: { Variables?: Record<string, unknown> } } }>;
const stacks = {
  defaults: buildStack().template.toJSON().Resources as Resources,
  'with a replay reader': buildStack(REPLAY_CONTEXT).template.toJSON().Resources as Resources,
};
const prefixes: Record<HandlerName, string> = { ...FUNCTIONS, replay: REPLAY_FUNCTION };

/** The environment of a handler's function: literal values as they are, tokens as placeholders; undefined when the stack has none. */
function envOf(resources: Resources, name: HandlerName): Record<string, string> | undefined {
  const ids = Object.keys(resources).filter((id) => resources[id].Type === 'AWS::Lambda::Function' && id.startsWith(prefixes[name]));
  expect(ids.length).toBeLessThanOrEqual(1);
  if (ids.length === 0) return undefined;
  const variables = resources[ids[0]].Properties.Environment?.Variables ?? {};
  // Table names and URLs are tokens until deploy; only their presence matters for a cold start.
  return Object.fromEntries(
    Object.entries(variables).map(([key, value]) => [key, typeof value === 'string' ? value : `https://placeholder.example/${key}`]),
  );
}

it('deploys every handler but the replay reader by default, and the replay reader when the brokers can be reached', () => {
  const present = (resources: Resources) => HANDLER_NAMES.filter((name) => envOf(resources, name));
  expect(present(stacks.defaults)).toEqual(HANDLER_NAMES.filter((name) => name !== 'replay'));
  expect(present(stacks['with a replay reader'])).toEqual([...HANDLER_NAMES]);
});

describe.each(Object.entries(stacks))('%s', (_stack, resources) => {
  it.each(HANDLER_NAMES.filter((name) => envOf(resources, name)))('%s builds with only the environment its function gets', (name) => {
    const saved = process.env;
    // As Lambda sets them: AWS_LAMBDA_FUNCTION_NAME makes handlers that must fail closed on AWS
    // (GET /metrics without its token secret) refuse to start.
    process.env = { PATH: saved.PATH, AWS_REGION: 'eu-west-1', AWS_LAMBDA_FUNCTION_NAME: name, ...envOf(resources, name) };
    try {
      jest.isolateModules(() => {
        // require, not import: isolateModules needs a fresh module registry for each handler.
        const mod = require(`../../lambdas/handlers/${name}`) as { handler: { warm(): void } };
        expect(() => mod.handler.warm()).not.toThrow();
      });
    } finally {
      process.env = saved;
    }
  });
});
