import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import type { EnvName } from '../../lambdas/config/env-names';
import type { LogLevel } from '../config';
import { ESBUILD_SETTINGS, handlerEntry, PROJECT_ROOT, type HandlerName } from '../lambda-bundling';

const APPLICATION_LOG_LEVELS: Record<LogLevel, lambda.ApplicationLogLevel> = {
  DEBUG: lambda.ApplicationLogLevel.DEBUG,
  INFO: lambda.ApplicationLogLevel.INFO,
  WARN: lambda.ApplicationLogLevel.WARN,
  ERROR: lambda.ApplicationLogLevel.ERROR,
};

/** Settings every function of the app shares. */
export interface FunctionDefaults {
  /** Powertools service name (`POWERTOOLS_SERVICE_NAME`), also the `service` metric dimension. */
  readonly serviceName: string;
  /** CloudWatch namespace of the EMF metrics (`POWERTOOLS_METRICS_NAMESPACE`). */
  readonly metricsNamespace: string;
  /** Powertools Logger level (`LOG_LEVEL`), also Lambda's application log level. */
  readonly logLevel: LogLevel;
  /** Retention of each function's log group. */
  readonly logRetention: logs.RetentionDays;
  /**
   * Reserved concurrency by handler: a ceiling for that function and a share kept free for it.
   * Lambda refuses a reservation that leaves the account under 100 unreserved, which a new account
   * (quota 10) cannot meet. @default none (every function shares the account's unreserved pool)
   */
  readonly reservedConcurrency?: Partial<Record<HandlerName, number>>;
}

/** Properties of a {@link ServiceFunction}. */
export interface ServiceFunctionProps {
  /** The handler entry, `lambdas/handlers/<handler>.ts`. */
  readonly handler: HandlerName;
  /** What the function does, shown in the console. */
  readonly description: string;
  /** Shared Powertools and logging settings. */
  readonly defaults: FunctionDefaults;
  /** Extra environment variables. @default none */
  readonly environment?: Partial<Record<EnvName, string>>;
  /** Memory in MB. @default 256 */
  readonly memorySize?: number;
  /** Timeout. @default 10 seconds */
  readonly timeout?: Duration;
  /**
   * Run in these subnets of a VPC with these security groups; the role then gets the ENI
   * permissions Lambda needs (AWSLambdaVPCAccessExecutionRole). @default not in a VPC
   */
  readonly network?: {
    readonly vpc: ec2.IVpc;
    readonly subnets: ec2.ISubnet[];
    readonly securityGroups: ec2.ISecurityGroup[];
  };
}

/**
 * A DynamoDB data-plane action a function may be granted on a linked table. Listed one by one so
 * that each function holds exactly the calls its adapters make (no Scan, no batch writes).
 */
export type TableAction = 'GetItem' | 'BatchGetItem' | 'Query' | 'PutItem' | 'UpdateItem' | 'DeleteItem';

/**
 * One Lambda of the app: a NodejsFunction (Node.js 22, arm64, bundled by the local esbuild) with
 * its own role and its own log group, so each function holds only the grants it is linked to.
 * `link*` sets the environment variable and the IAM grant in one step.
 */
export class ServiceFunction extends Construct {
  /** The function. */
  public readonly function: NodejsFunction;
  /** Its execution role; starts with nothing but write access to its own log group. */
  public readonly role: iam.Role;
  /** Its log group. */
  public readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: ServiceFunctionProps) {
    super(scope, id);
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.defaults.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // An own role instead of the default one: the default attaches AWSLambdaBasicExecutionRole,
    // which may write to every log group in the account.
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Execution role of the ${props.handler} Lambda`,
    });
    this.logGroup.grantWrite(this.role);
    // With a role of its own, a function in a VPC does not get this policy from aws-cdk-lib, and
    // Lambda refuses to create it without the ENI actions.
    if (props.network) this.role.addManagedPolicy(iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSLambdaVPCAccessExecutionRole'));

    this.function = new NodejsFunction(this, 'Function', {
      entry: handlerEntry(props.handler),
      handler: 'handler',
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: `${PROJECT_ROOT}/package-lock.json`,
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      description: props.description,
      memorySize: props.memorySize ?? 256,
      timeout: props.timeout ?? Duration.seconds(10),
      reservedConcurrentExecutions: props.defaults.reservedConcurrency?.[props.handler],
      role: this.role,
      logGroup: this.logGroup,
      ...(props.network
        ? { vpc: props.network.vpc, vpcSubnets: { subnets: props.network.subnets }, securityGroups: props.network.securityGroups }
        : {}),
      loggingFormat: lambda.LoggingFormat.JSON,
      // With JSON logs Lambda filters lines by their "level" (INFO unless set): without this,
      // logLevel=DEBUG would reach Powertools and then be dropped by Lambda.
      applicationLogLevelV2: APPLICATION_LOG_LEVELS[props.defaults.logLevel],
      environment: {
        POWERTOOLS_SERVICE_NAME: props.defaults.serviceName,
        POWERTOOLS_METRICS_NAMESPACE: props.defaults.metricsNamespace,
        LOG_LEVEL: props.defaults.logLevel,
        // The bundles carry source maps; this makes stack traces name TypeScript lines.
        NODE_OPTIONS: '--enable-source-maps',
        ...props.environment,
      },
      bundling: {
        forceDockerBundling: false,
        format: OutputFormat.CJS,
        ...ESBUILD_SETTINGS,
        externalModules: [...ESBUILD_SETTINGS.externalModules],
      },
    });
  }

  /** Sets `envName` to the table's name and grants exactly `actions` on it. */
  public linkTable(envName: EnvName, table: ITableV2, actions: readonly TableAction[]): this {
    if (actions.length === 0) throw new Error(`ServiceFunction: linkTable(${envName}) needs at least one action`);
    this.function.addEnvironment(envName, table.tableName);
    table.grant(this.function, ...actions.map((a) => `dynamodb:${a}`));
    return this;
  }

  /** Sets `envName` to the secret's ARN and grants read access to its value. */
  public linkSecret(envName: EnvName, secret: ISecret): this {
    this.function.addEnvironment(envName, secret.secretArn);
    secret.grantRead(this.function);
    return this;
  }

  /**
   * Lets the function decrypt, through Secrets Manager only, secrets encrypted with this customer
   * managed key (MSK SCRAM secrets must use one).
   */
  public allowSecretKey(keyArn: string): this {
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['kms:Decrypt'],
        resources: [keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(this).region}.amazonaws.com` } },
      }),
    );
    return this;
  }

  /** Sets a plain environment variable. */
  public setEnv(envName: EnvName, value: string): this {
    this.function.addEnvironment(envName, value);
    return this;
  }
}
