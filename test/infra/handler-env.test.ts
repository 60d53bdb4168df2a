/**
 * Each deployed function starts with exactly the environment the stack gives it: its handler is
 * built (as on a cold start) with only those variables set, so a handler that reads a variable
 * its function lacks fails here, not on its first request in AWS.
 */
import { HANDLER_NAMES, type HandlerName } from '../../infra/lambda-bundling';
import { FUNCTIONS, buildStack } from './stack-fixture';

const { template } = buildStack();
const resources = template.toJSON().Resources as Record<string, { Type: string; Properties: { Environment?: { Variables?: Record<string, unknown> } } }>;

/** The environment of a handler's function: literal values as they are, tokens as placeholders. */
function envOf(name: HandlerName): Record<string, string> {
  const ids = Object.keys(resources).filter((id) => resources[id].Type === 'AWS::Lambda::Function' && id.startsWith(FUNCTIONS[name]));
  expect(ids).toHaveLength(1);
  const variables = resources[ids[0]].Properties.Environment?.Variables ?? {};
  // Table names and URLs are tokens until deploy; only their presence matters for a cold start.
  return Object.fromEntries(
    Object.entries(variables).map(([key, value]) => [key, typeof value === 'string' ? value : `https://placeholder.example/${key}`]),
  );
}

describe.each(HANDLER_NAMES)('%s', (name) => {
  it('builds with only the environment its function gets', () => {
    const saved = process.env;
    // As Lambda sets them: AWS_LAMBDA_FUNCTION_NAME makes handlers that must fail closed on AWS
    // (GET /metrics without its token secret) refuse to start.
    process.env = { PATH: saved.PATH, AWS_REGION: 'eu-west-1', AWS_LAMBDA_FUNCTION_NAME: name, ...envOf(name) };
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
