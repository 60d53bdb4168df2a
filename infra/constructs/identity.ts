import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import { Construct } from 'constructs';

/** Properties of {@link DashboardIdentity}. */
export interface DashboardIdentityProps {
  /**
   * The dashboard's URL, with its trailing slash: the app client's only callback and sign-out
   * URL (the page sends `new URL('./', location)` as `redirect_uri`). May be a token.
   */
  readonly dashboardUrl: string;
  /**
   * Prefix of the managed login domain, `{prefix}.auth.{region}.amazoncognito.com`; unique per
   * region across AWS.
   * @default `{stack name}-{account}` in lower case
   */
  readonly domainPrefix?: string;
  /** Lifetime of ID and access tokens (the page refreshes them ahead of expiry). @default 1 hour */
  readonly tokenValidity?: Duration;
  /** Lifetime of refresh tokens: how long a dashboard stays signed in without a login. @default 1 day */
  readonly refreshTokenValidity?: Duration;
}

/**
 * Who may use the dashboard: a Cognito user pool with managed login, no self sign-up (an
 * administrator adds users), and the dashboard's app client (authorization code with PKCE, no
 * secret). A user's sites are the custom attribute `sites` (claim `custom:sites`), which only
 * administrators can write: the app client may read it but not write any attribute.
 */
export class DashboardIdentity extends Construct {
  /** The ID token claim carrying a user's sites. */
  public static readonly SITES_CLAIM = 'custom:sites';
  /** Scopes the dashboard asks for. */
  public static readonly SCOPES = ['openid', 'email', 'profile'];

  /** The user pool. */
  public readonly userPool: cognito.UserPool;
  /** The dashboard's app client. */
  public readonly client: cognito.UserPoolClient;
  /** The managed login domain. */
  public readonly domain: cognito.UserPoolDomain;
  /** The OpenID Connect issuer URL, `https://cognito-idp.{region}.amazonaws.com/{userPoolId}`. */
  public readonly issuer: string;
  /** The issuer's JWKS URL. */
  public readonly jwksUrl: string;

  constructor(scope: Construct, id: string, props: DashboardIdentityProps) {
    super(scope, id);
    const stack = Stack.of(this);

    this.userPool = new cognito.UserPool(this, 'Users', {
      selfSignUpEnabled: false,
      signInAliases: { username: true, email: true },
      signInCaseSensitive: false,
      standardAttributes: { email: { required: true, mutable: true } },
      customAttributes: { sites: new cognito.StringAttribute({ minLen: 0, maxLen: 2048, mutable: true }) },
      passwordPolicy: { minLength: 12, requireDigits: true, requireLowercase: true, requireUppercase: true, requireSymbols: true, tempPasswordValidity: Duration.days(3) },
      mfa: cognito.Mfa.OPTIONAL,
      mfaSecondFactor: { otp: true, sms: false },
      accountRecovery: cognito.AccountRecovery.EMAIL_ONLY,
      // Users are data an operator entered by hand: deleting the stack must not delete them.
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.domain = this.userPool.addDomain('Login', {
      cognitoDomain: { domainPrefix: props.domainPrefix ?? `${stack.stackName.toLowerCase()}-${stack.account}` },
      managedLoginVersion: cognito.ManagedLoginVersion.NEWER_MANAGED_LOGIN,
    });

    this.client = this.userPool.addClient('Dashboard', {
      generateSecret: false,
      // Only the managed login signs in: no password or SRP flow straight from a script.
      authFlows: { userPassword: false, userSrp: false, custom: false, adminUserPassword: false },
      oAuth: {
        flows: { authorizationCodeGrant: true, implicitCodeGrant: false, clientCredentials: false },
        scopes: [cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL, cognito.OAuthScope.PROFILE],
        callbackUrls: [props.dashboardUrl],
        logoutUrls: [props.dashboardUrl],
      },
      supportedIdentityProviders: [cognito.UserPoolClientIdentityProvider.COGNITO],
      preventUserExistenceErrors: true,
      enableTokenRevocation: true,
      idTokenValidity: props.tokenValidity ?? Duration.hours(1),
      accessTokenValidity: props.tokenValidity ?? Duration.hours(1),
      refreshTokenValidity: props.refreshTokenValidity ?? Duration.days(1),
      readAttributes: new cognito.ClientAttributes()
        .withStandardAttributes({ email: true, emailVerified: true, preferredUsername: true, fullname: true })
        .withCustomAttributes('sites'),
      // Users must not grant themselves sites.
      writeAttributes: new cognito.ClientAttributes(),
    });

    // Managed login (the newer pages) needs a style; Cognito's own is used.
    new cognito.CfnManagedLoginBranding(this, 'LoginStyle', {
      userPoolId: this.userPool.userPoolId,
      clientId: this.client.userPoolClientId,
      useCognitoProvidedValues: true,
    });

    this.issuer = this.userPool.userPoolProviderUrl;
    this.jwksUrl = `${this.issuer}/.well-known/jwks.json`;
  }

  /** The managed login origin, `https://{prefix}.auth.{region}.amazoncognito.com` (token endpoint). */
  public get loginOrigin(): string {
    return this.domain.baseUrl();
  }
}
