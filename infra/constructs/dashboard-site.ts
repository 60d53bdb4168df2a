import * as fs from 'node:fs';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import { Construct } from 'constructs';
import { accountUniqueName } from '../names';

/** Properties of {@link DashboardSite}. */
export interface DashboardSiteProps {
  /** Directory of the built dashboard (`npm run build:frontend` writes `frontend/dist`). */
  readonly assetPath: string;
  /** The wss URL written to `config.json` beside the page. */
  readonly wsUrl: string;
  /**
   * Where the page signs operators in, written to `config.json` as `auth` (see
   * frontend/src/config.ts). Its issuer's origin needs to be among {@link connectOrigins}.
   * @default no sign-in: the page connects with a `?token=` given in its URL
   */
  readonly auth?: {
    readonly issuer: string;
    readonly clientId: string;
    readonly scopes: string[];
    /** The ID token claim listing a user's sites, when not `sites`. */
    readonly sitesClaim?: string;
  };
  /**
   * Origins the page may open connections to besides itself (the `connect-src` of the CSP),
   * such as `wss://{api}.execute-api.{region}.amazonaws.com`.
   * @default none
   */
  readonly connectOrigins?: string[];
}

/**
 * The dashboard: a private S3 bucket served only through CloudFront with origin access control,
 * HTTP redirected to HTTPS, security headers including a content security policy, and the built page deployed
 * together with a generated `config.json` (`{"wsUrl": ..., "auth": {...}}`).
 */
export class DashboardSite extends Construct {
  /** The private bucket holding the page. */
  public readonly bucket: s3.Bucket;
  /** The CloudFront distribution. */
  public readonly distribution: cloudfront.Distribution;
  /** The security headers policy, with the CSP. */
  public readonly headersPolicy: cloudfront.ResponseHeadersPolicy;
  /** The deployment of the page and config.json. */
  public readonly deployment: s3deploy.BucketDeployment;

  constructor(scope: Construct, id: string, props: DashboardSiteProps) {
    super(scope, id);
    if (!fs.existsSync(`${props.assetPath}/index.html`)) {
      throw new Error(
        `DashboardSite: ${props.assetPath}/index.html not found. Build the dashboard first (npm run build:frontend), ` +
          'or point context "dashboardAssetPath" at a built copy.',
      );
    }

    this.bucket = new s3.Bucket(this, 'Bucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy: RemovalPolicy.DESTROY,
      autoDeleteObjects: true,
    });

    const connectSrc = ["'self'", ...(props.connectOrigins ?? [])].join(' ');
    this.headersPolicy = new cloudfront.ResponseHeadersPolicy(this, 'SecurityHeaders', {
      // CloudFront policy names are unique per account: the region keeps a second region's stack apart.
      responseHeadersPolicyName: accountUniqueName(this, 'security-headers', 128),
      comment: 'IoT dashboard: CSP and security headers',
      securityHeadersBehavior: {
        contentSecurityPolicy: {
          override: true,
          contentSecurityPolicy: [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            `connect-src ${connectSrc}`,
            "manifest-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
            "object-src 'none'",
          ].join('; '),
        },
        strictTransportSecurity: {
          override: true,
          accessControlMaxAge: Duration.days(365),
          includeSubdomains: true,
        },
        contentTypeOptions: { override: true },
        frameOptions: { override: true, frameOption: cloudfront.HeadersFrameOption.DENY },
        referrerPolicy: { override: true, referrerPolicy: cloudfront.HeadersReferrerPolicy.STRICT_ORIGIN_WHEN_CROSS_ORIGIN },
      },
    });

    this.distribution = new cloudfront.Distribution(this, 'Distribution', {
      comment: 'IoT live dashboard',
      defaultRootObject: 'index.html',
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
      priceClass: cloudfront.PriceClass.PRICE_CLASS_100,
      defaultBehavior: {
        origin: origins.S3BucketOrigin.withOriginAccessControl(this.bucket, {
          originAccessControl: new cloudfront.S3OriginAccessControl(this, 'OriginAccessControl', {
            originAccessControlName: accountUniqueName(this, 'dashboard-oac', 64),
            description: 'The dashboard distribution reads the private bucket',
          }),
        }),
        // http:// answers with a redirect rather than a 403: a typed address still works.
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        allowedMethods: cloudfront.AllowedMethods.ALLOW_GET_HEAD,
        cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
        responseHeadersPolicy: this.headersPolicy,
        compress: true,
      },
    });

    this.deployment = new s3deploy.BucketDeployment(this, 'Deploy', {
      destinationBucket: this.bucket,
      sources: [s3deploy.Source.asset(props.assetPath), s3deploy.Source.jsonData('config.json', { wsUrl: props.wsUrl, ...(props.auth ? { auth: props.auth } : {}) })],
      distribution: this.distribution,
      // One wildcard path counts as one invalidation; the first 1,000 a month are free.
      distributionPaths: ['/*'],
      memoryLimit: 512,
      prune: true,
    });
  }

  /** `https://{distribution}.cloudfront.net`. */
  public get url(): string {
    return `https://${this.distribution.distributionDomainName}`;
  }
}
