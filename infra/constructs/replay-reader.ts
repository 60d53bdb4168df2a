import { Duration, Fn } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { ENV } from '../../lambdas/config/env-names';
import type { KafkaAuth, KafkaVpc } from '../config';
import { ServiceFunction, type FunctionDefaults, type ServiceFunctionProps } from './service-function';
import { mskResourceArns, type MskSource, type SelfManagedSource } from './stream-consumer';

/** Properties of {@link ReplayReader}. */
export interface ReplayReaderProps {
  /** Shared function settings. */
  readonly functionDefaults: FunctionDefaults;
  /** The Kafka cluster: for MSK, its ARN scopes the IAM grants. */
  readonly source: MskSource | SelfManagedSource;
  /** `host:port` of the brokers, on the listener of {@link auth} (MSK: `aws kafka get-bootstrap-brokers`). */
  readonly bootstrapServers: string[];
  /** The VPC, subnets and a security group the brokers admit. @default not in a VPC (brokers reachable from the internet) */
  readonly vpc?: KafkaVpc;
  /** Authentication to Kafka, as the event source mapping's. */
  readonly auth: KafkaAuth;
  /** Secrets Manager ARN of the SASL credentials; required for every auth but `iam` and `none`. @default none */
  readonly secretArn?: string;
  /** KMS key encrypting that secret. @default none */
  readonly secretKmsKeyArn?: string;
  /** Topics it may read. @default ['device-data', 'alerts'] */
  readonly topics?: string[];
  /** Kafka client id; each container's consumer group is `<clientId>-<uuid>`. @default 'iot-live-dashboard-replay' */
  readonly clientId?: string;
  /** Timeout of one replay. @default 15 seconds (a read gives up after 10, lambdas/adapters/kafka-log.ts) */
  readonly timeout?: Duration;
}

/**
 * The replay reader: the function that reads a resuming subscription's missed records from Kafka
 * (lambdas/handlers/replay.ts), in the brokers' VPC when they are only reachable there. The
 * subscribe route, outside any VPC, invokes it synchronously ({@link linkTo}). It holds read-only
 * access: for MSK IAM, connect, describe and read the topics, and only consumer groups named after
 * its client id (it never commits); for SASL, the secret.
 */
export class ReplayReader extends Construct {
  /** The reader function. */
  public readonly handler: ServiceFunction;
  /** Its timeout. */
  public readonly timeout: Duration;
  /** The consumer groups it may join, as MSK IAM names them (a prefix with `*`); empty without MSK IAM. */
  public readonly consumerGroupArns: string[] = [];

  constructor(scope: Construct, id: string, props: ReplayReaderProps) {
    super(scope, id);
    const clientId = props.clientId ?? 'iot-live-dashboard-replay';
    const topics = props.topics ?? ['device-data', 'alerts'];
    let network: ServiceFunctionProps['network'];
    if (props.vpc) {
      const v = props.vpc;
      network = {
        // Imported by id: Fn.getAzs() keeps synth from looking the AZs up in the account.
        vpc: ec2.Vpc.fromVpcAttributes(this, 'KafkaVpc', { vpcId: v.vpcId, availabilityZones: Fn.getAzs() }),
        subnets: v.subnetIds.map((s, i) => ec2.Subnet.fromSubnetId(this, `KafkaSubnet${i}`, s)),
        // The brokers' group (it admits itself on the broker ports, as the event source mapping
        // needs too); not mutable, so nothing here changes its rules.
        securityGroups: [ec2.SecurityGroup.fromSecurityGroupId(this, 'KafkaSecurityGroup', v.securityGroupId, { mutable: false })],
      };
    }
    this.timeout = props.timeout ?? Duration.seconds(15);
    this.handler = new ServiceFunction(this, 'Reader', {
      handler: 'replay',
      description: 'Resume: reads the records a reconnecting dashboard missed from Kafka, for the subscribe route',
      defaults: props.functionDefaults,
      // Decoding and compressing a full window (10,000 records a partition) wants the CPU.
      memorySize: 1024,
      timeout: this.timeout,
      network,
      environment: {
        [ENV.kafkaBrokers]: props.bootstrapServers.join(','),
        [ENV.kafkaAuth]: props.auth,
        [ENV.kafkaClientId]: clientId,
      },
    });

    if (props.auth !== 'iam' && props.auth !== 'none') {
      if (!props.secretArn) throw new Error(`ReplayReader: kafka auth ${props.auth} needs secretArn`);
      this.handler.linkSecret(ENV.kafkaSecretArn, secretsmanager.Secret.fromSecretCompleteArn(this, 'KafkaSecret', props.secretArn));
      if (props.secretKmsKeyArn) this.handler.allowSecretKey(props.secretKmsKeyArn);
    }
    if (props.source.kind === 'msk' && props.auth === 'iam') {
      const arns = mskResourceArns(props.source.clusterArn);
      this.handler.function.addToRolePolicy(new iam.PolicyStatement({ actions: ['kafka-cluster:Connect'], resources: [props.source.clusterArn] }));
      // Metadata and ListOffsets need DescribeTopic; Fetch needs ReadData.
      this.handler.function.addToRolePolicy(
        new iam.PolicyStatement({ actions: ['kafka-cluster:DescribeTopic', 'kafka-cluster:ReadData'], resources: topics.map(arns.topic) }),
      );
      // Each container joins a group of its own (kafkajs has no manual assignment) and never commits.
      this.consumerGroupArns.push(arns.group(`${clientId}-*`));
      this.handler.function.addToRolePolicy(
        new iam.PolicyStatement({ actions: ['kafka-cluster:DescribeGroup', 'kafka-cluster:AlterGroup'], resources: this.consumerGroupArns }),
      );
    }
  }

  /** Lets `caller` invoke the reader, and tells it the reader's name (REPLAY_FUNCTION_NAME). */
  public linkTo(caller: ServiceFunction): void {
    caller.setEnv(ENV.replayFunctionName, this.handler.function.functionName);
    // The unqualified function only: `grantInvoke` would add every version and alias (`:*`).
    caller.function.addToRolePolicy(new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [this.handler.function.functionArn] }));
  }
}
