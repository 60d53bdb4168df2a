/**
 * Sign-in in the template: the Cognito user pool and the dashboard's app client (code + PKCE, no
 * secret, the CloudFront URL as callback), the authorizer's issuer and audience, what config.json
 * and the CSP give the page; and the bring-your-own-issuer and HS256 variants.
 */
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { ENV } from '../../lambdas/config/env-names';
import { buildStack } from './stack-fixture';

type Resources = Record<string, { Type: string; Properties: any }>;

function only(template: Template, type: string): [string, any] {
  const entries = Object.entries(template.findResources(type));
  expect(entries).toHaveLength(1);
  return [entries[0]![0], entries[0]![1].Properties];
}

function authorizerEnv(template: Template): Record<string, unknown> {
  const resources = template.toJSON().Resources as Resources;
  const [, fn] = Object.entries(resources).find(([id, r]) => r.Type === 'AWS::Lambda::Function' && id.startsWith('RealtimeAuthorizerFunction'))!;
  return fn.Properties.Environment.Variables;
}

/** The values config.json gets at deploy (the BucketDeployment's markers). */
function configMarkers(template: Template): Record<string, unknown> {
  const [, deployment] = only(template, 'Custom::CDKBucketDeployment');
  return Object.assign({}, ...(deployment.SourceMarkers as Record<string, unknown>[]));
}

function csp(template: Template): string {
  const [, policy] = only(template, 'AWS::CloudFront::ResponseHeadersPolicy');
  return JSON.stringify(policy.ResponseHeadersPolicyConfig.SecurityHeadersConfig.ContentSecurityPolicy);
}

describe('default: a Cognito user pool signs operators in', () => {
  const { template } = buildStack();
  const [poolId, pool] = only(template, 'AWS::Cognito::UserPool');
  const [clientId, client] = only(template, 'AWS::Cognito::UserPoolClient');
  const [distributionId] = only(template, 'AWS::CloudFront::Distribution');

  it('has a user pool only administrators add users to, with sites as a custom attribute', () => {
    expect(pool.AdminCreateUserConfig).toMatchObject({ AllowAdminCreateUserOnly: true });
    expect(pool.Schema).toContainEqual(expect.objectContaining({ Name: 'sites', AttributeDataType: 'String', Mutable: true }));
    expect(pool.MfaConfiguration).toBe('OPTIONAL');
    template.hasResource('AWS::Cognito::UserPool', { DeletionPolicy: 'Retain' });
  });

  it('has an app client for the dashboard: code flow (PKCE), no secret, the CloudFront URL as callback and sign-out', () => {
    expect(client.GenerateSecret).toBe(false);
    expect(client.AllowedOAuthFlowsUserPoolClient).toBe(true);
    expect(client.AllowedOAuthFlows).toEqual(['code']);
    expect(client.AllowedOAuthScopes).toEqual(['openid', 'email', 'profile']);
    const dashboardUrl = { 'Fn::Join': ['', ['https://', { 'Fn::GetAtt': [distributionId, 'DomainName'] }, '/']] };
    expect(client.CallbackURLs).toEqual([dashboardUrl]);
    expect(client.LogoutURLs).toEqual([dashboardUrl]);
    expect(client.UserPoolId).toEqual({ Ref: poolId });
    // Users cannot write any attribute through the client, so cannot grant themselves sites.
    expect(client.WriteAttributes).toEqual([]);
    expect(client.ReadAttributes).toContain('custom:sites');
    expect(client.ExplicitAuthFlows).toEqual(['ALLOW_REFRESH_TOKEN_AUTH']);
    expect(client.IdTokenValidity).toBe(60);
  });

  it('has a managed login domain and style', () => {
    const [, domain] = only(template, 'AWS::Cognito::UserPoolDomain');
    expect(domain).toMatchObject({ ManagedLoginVersion: 2, UserPoolId: { Ref: poolId } });
    expect(JSON.stringify(domain.Domain)).toContain('teststack-');
    template.hasResourceProperties('AWS::Cognito::ManagedLoginBranding', { ClientId: { Ref: clientId }, UseCognitoProvidedValues: true });
  });

  it('has the authorizer check the pool as issuer, the client as audience, and read sites from custom:sites', () => {
    const env = authorizerEnv(template);
    expect(env[ENV.authMode]).toBe('jwks');
    expect(env[ENV.jwtIssuer]).toEqual({ 'Fn::GetAtt': [poolId, 'ProviderURL'] });
    expect(env[ENV.jwtAudience]).toEqual({ Ref: clientId });
    expect(JSON.stringify(env[ENV.jwksUrl])).toContain('/.well-known/jwks.json');
    expect(env[ENV.sitesClaim]).toBe('custom:sites');
  });

  it('writes config.json with the pool as issuer and the client id, and lets the page reach them', () => {
    // config.json is rendered at deploy: its tokens travel as markers the deployment substitutes.
    expect(Object.values(configMarkers(template))).toEqual(
      expect.arrayContaining([{ 'Fn::GetAtt': [poolId, 'ProviderURL'] }, { Ref: clientId }]),
    );
    expect(csp(template)).toContain('cognito-idp.eu-west-1.');
    expect(csp(template)).toContain('.auth.eu-west-1.amazoncognito.com');
  });

  it('outputs the user pool id and the login domain', () => {
    template.hasOutput('UserPoolId', { Value: { Ref: poolId } });
    template.hasOutput('SignInUrl', Match.anyValue());
  });
});

describe('bring your own OpenID Connect issuer', () => {
  const issuer = 'https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0';
  const { template } = buildStack({ authMode: 'jwks', jwtIssuer: issuer, jwtAudience: 'dashboard-app', sitesClaim: 'plants' });

  it('creates no user pool and no secret; the authorizer checks that issuer and client', () => {
    template.resourceCountIs('AWS::Cognito::UserPool', 0);
    template.resourceCountIs('AWS::SecretsManager::Secret', 1);
    expect(authorizerEnv(template)).toMatchObject({ [ENV.authMode]: 'jwks', [ENV.jwtIssuer]: issuer, [ENV.jwtAudience]: 'dashboard-app', [ENV.sitesClaim]: 'plants' });
    expect(authorizerEnv(template)[ENV.jwksUrl]).toBeUndefined();
  });

  it('lets the page reach the issuer it signs in at', () => {
    expect(csp(template)).toContain('https://login.microsoftonline.com');
  });
});

describe('hs256: tokens for scripts, no sign-in', () => {
  const { template } = buildStack({ authMode: 'hs256' });

  it('creates the secret and no user pool; the authorizer reads the secret', () => {
    template.resourceCountIs('AWS::Cognito::UserPool', 0);
    template.resourceCountIs('AWS::SecretsManager::Secret', 2);
    expect(authorizerEnv(template)).toMatchObject({ [ENV.authMode]: 'hs256', [ENV.jwtSecretArn]: { Ref: expect.stringMatching(/^JwtSecret/) } });
  });
});
