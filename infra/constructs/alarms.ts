import { Duration } from 'aws-cdk-lib';
import type * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subs from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** The name of the custom metric counting connections found gone when posting (Powertools EMF). */
export const STALE_CONNECTIONS_METRIC = 'websocket_stale_connections_total';

/** Properties of {@link OperationalAlarms}. */
export interface OperationalAlarmsProps {
  /** The stream function (invocations, errors, offset lag). */
  readonly streamFunction: lambda.IFunction;
  /**
   * The replay reader and its timeout (errors, throttles, duration): when it fails, reconnecting
   * dashboards get the snapshot instead of what they missed. @default none (no reader deployed)
   */
  readonly replayFunction?: { readonly function: lambda.IFunction; readonly timeout: Duration };
  /** The $connect authorizer: when it fails, nobody can connect. */
  readonly authorizerFunction: lambda.IFunction;
  /** Every other function: the WebSocket routes, /metrics and /health (errors). */
  readonly routeFunctions: lambda.IFunction[];
  /** The WebSocket API and its stage name (integration and execution errors). */
  readonly webSocketApi: { readonly api: apigwv2.IWebSocketApi; readonly stageName: string };
  /** The HTTP API of /metrics and /health (5xx). */
  readonly httpApi: apigwv2.IHttpApi;
  /** The on-failure queue of the Kafka mappings, when the destination is SQS (depth). @default none */
  readonly failureQueue?: sqs.IQueue;
  /** The DynamoDB tables (read and write throttle events). */
  readonly tables: ITableV2[];
  /** Namespace of the EMF metrics. */
  readonly metricsNamespace: string;
  /** Powertools service name: the `service` dimension Powertools Metrics adds to every metric. */
  readonly serviceName: string;
  /** Alarm when the consumer group lags the topic by more records than this. @default 1000 */
  readonly offsetLagThreshold?: number;
  /** Alarm when more connections than this are found stale within 5 minutes. @default 100 */
  readonly staleConnectionsThreshold?: number;
  /**
   * Alarm when the stream Lambda was not invoked for this many minutes (rounded up to 5): the
   * trigger cannot reach Kafka, is disabled, or the topics are silent. 0 turns the alarm off.
   * @default 15
   */
  readonly streamIdleMinutes?: number;
  /** Also notify when an alarm returns to OK. @default false (one message per incident) */
  readonly okActions?: boolean;
  /** Email subscribed to the alarm topic. @default no subscription */
  readonly email?: string;
}

/** CloudWatch math expressions over more metrics than this cannot back an alarm. */
const MAX_METRICS_PER_ALARM = 10;
const PERIOD = Duration.minutes(5);

/**
 * CloudWatch alarms a DevOps engineer is paged on, each notifying one SNS topic, and a dashboard
 * beside them. Alarms on something that reports only when it happens (errors, throttles) treat
 * missing data as OK; the stream-idle alarm treats it as breaching, because a trigger that never
 * connects produces no data at all.
 */
export class OperationalAlarms extends Construct {
  /** The topic every alarm notifies. */
  public readonly topic: sns.Topic;
  /** The stream function reported errors. */
  public readonly streamErrors: cloudwatch.Alarm;
  /** The stream function was not invoked for `streamIdleMinutes`; absent when that is 0. */
  public readonly streamIdle?: cloudwatch.Alarm;
  /** The consumer fell behind the topics. */
  public readonly offsetLag: cloudwatch.Alarm;
  /** The $connect authorizer failed (not: refused a token). */
  public readonly authorizerErrors: cloudwatch.Alarm;
  /** A route, /metrics or /health function failed (one alarm per group of up to ten functions). */
  public readonly routeErrors: cloudwatch.Alarm[];
  /** The WebSocket API reported integration or execution errors. */
  public readonly webSocketErrors: cloudwatch.Alarm;
  /** The HTTP API answered 5xx. */
  public readonly httpServerErrors: cloudwatch.Alarm;
  /** Batches are waiting in the failure queue; absent with an S3 destination. */
  public readonly failureQueueDepth?: cloudwatch.Alarm;
  /** A table throttled reads or writes (one alarm per group of up to five tables). */
  public readonly tableThrottles: cloudwatch.Alarm[];
  /** A function was throttled (one alarm per group of up to ten functions). */
  public readonly throttles: cloudwatch.Alarm[];
  /** The replay reader failed; absent without a reader. */
  public readonly replayErrors?: cloudwatch.Alarm;
  /** Replays take most of the reader's timeout; absent without a reader. */
  public readonly replayDuration?: cloudwatch.Alarm;
  /** Many pushes found their connection gone. */
  public readonly staleConnections: cloudwatch.Alarm;
  /** The CloudWatch dashboard of the same signals. */
  public readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: OperationalAlarmsProps) {
    super(scope, id);
    this.topic = new sns.Topic(this, 'Topic', { displayName: 'IoT dashboard alarms', enforceSSL: true });
    if (props.email) this.topic.addSubscription(new subs.EmailSubscription(props.email));
    const sum = { period: PERIOD, statistic: cloudwatch.Stats.SUM };
    const atLeastOne = {
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    };
    const stream = props.streamFunction;
    const replay = props.replayFunction?.function;
    const allFunctions = [props.authorizerFunction, ...props.routeFunctions, stream, ...(replay ? [replay] : [])];

    this.streamErrors = stream.metricErrors(sum).createAlarm(this, 'StreamErrors', {
      ...atLeastOne,
      alarmDescription: 'The Kafka stream Lambda failed; records are being retried or sent to the failure destination.',
    });

    const idleMinutes = props.streamIdleMinutes ?? 15;
    if (idleMinutes > 0) {
      this.streamIdle = stream.metricInvocations(sum).createAlarm(this, 'StreamIdle', {
        alarmDescription:
          `The stream Lambda was not invoked for ${idleMinutes} minutes: the Kafka trigger cannot reach the cluster ` +
          '(network, security group, IAM, secret), is disabled, or the topics are silent. Check the event source mapping state.',
        threshold: 1,
        evaluationPeriods: Math.ceil(idleMinutes / 5),
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        // Lambda publishes Invocations only when there are some: no data is the failure itself.
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      });
    }

    // OffsetLag: records between the topic's end and the consumer group's committed offset.
    this.offsetLag = new cloudwatch.Metric({
      namespace: 'AWS/Lambda',
      metricName: 'OffsetLag',
      dimensionsMap: { FunctionName: stream.functionName },
      statistic: cloudwatch.Stats.MAXIMUM,
      period: PERIOD,
    }).createAlarm(this, 'OffsetLag', {
      alarmDescription: 'The stream Lambda is falling behind the Kafka topics; the dashboard shows stale data.',
      threshold: props.offsetLagThreshold ?? 1000,
      evaluationPeriods: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    if (props.replayFunction) {
      const { function: reader, timeout } = props.replayFunction;
      this.replayErrors = reader.metricErrors(sum).createAlarm(this, 'ReplayErrors', {
        ...atLeastOne,
        alarmDescription:
          'The replay reader failed (brokers unreachable from its subnets, security group, IAM or secret, or a read past its ' +
          'deadline): reconnecting dashboards get the snapshot instead of the records they missed.',
      });
      // Most of the timeout: the subscribe route (and the operator) waits that long before a replay or a snapshot.
      this.replayDuration = reader.metricDuration({ period: PERIOD, statistic: 'p90' }).createAlarm(this, 'ReplayDuration', {
        alarmDescription: `Replays take over ${Math.round(timeout.toSeconds() * 0.8)} s (p90 for 10 minutes), close to the reader's timeout: brokers slow or far, or windows too large for its memory.`,
        threshold: timeout.toMilliseconds() * 0.8,
        evaluationPeriods: 2,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }

    this.authorizerErrors = props.authorizerFunction.metricErrors(sum).createAlarm(this, 'AuthorizerErrors', {
      ...atLeastOne,
      alarmDescription:
        'The $connect authorizer failed (Secrets Manager or JWKS unreachable, or a bug): every new connection is refused.',
    });

    this.routeErrors = this.sumAlarms(
      'RouteErrors',
      props.routeFunctions.map((f) => f.metricErrors(sum)),
      'Errors',
      'A WebSocket route, /metrics or /health Lambda failed: clients get errors or lose their subscriptions.',
      atLeastOne,
    );

    const wsMetric = (metricName: string) =>
      new cloudwatch.Metric({
        namespace: 'AWS/ApiGateway',
        metricName,
        dimensionsMap: { ApiId: props.webSocketApi.api.apiId, Stage: props.webSocketApi.stageName },
        ...sum,
      });
    const [webSocketErrors] = this.sumAlarms(
      'WebSocketErrors',
      [wsMetric('IntegrationError'), wsMetric('ExecutionError')],
      'Integration + execution errors',
      'The WebSocket API could not run a route (integration or execution error): messages are answered with errors.',
      atLeastOne,
    );
    this.webSocketErrors = webSocketErrors!;

    this.httpServerErrors = props.httpApi.metricServerError(sum).createAlarm(this, 'HttpServerErrors', {
      ...atLeastOne,
      alarmDescription: '/metrics or /health answered 5xx: scrapes fail and uptime checks report down.',
    });

    if (props.failureQueue) {
      this.failureQueueDepth = props.failureQueue
        .metricApproximateNumberOfMessagesVisible({ period: PERIOD, statistic: cloudwatch.Stats.MAXIMUM })
        .createAlarm(this, 'FailureQueueDepth', {
          alarmDescription:
            'Batches the stream Lambda gave up on are waiting in the failure queue (kept 14 days): inspect and replay or drop them.',
          threshold: 0,
          evaluationPeriods: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        });
    }

    this.tableThrottles = this.sumAlarms(
      'TableThrottles',
      props.tables.flatMap((t) => [t.metric('ReadThrottleEvents', sum), t.metric('WriteThrottleEvents', sum)]),
      'Throttle events',
      'DynamoDB throttled reads or writes: subscriptions, deliveries or metrics are being retried or lost.',
      atLeastOne,
    );

    this.throttles = this.sumAlarms(
      'Throttles',
      allFunctions.map((f) => f.metricThrottles(sum)),
      'Throttles',
      'A Lambda of the dashboard was throttled: raise its reserved concurrency or the account limit.',
      atLeastOne,
    );

    this.staleConnections = new cloudwatch.Metric({
      namespace: props.metricsNamespace,
      metricName: STALE_CONNECTIONS_METRIC,
      dimensionsMap: { service: props.serviceName },
      ...sum,
    }).createAlarm(this, 'StaleConnections', {
      alarmDescription: 'Many pushes found their WebSocket connection gone: clients are dropping or $disconnect is failing.',
      threshold: props.staleConnectionsThreshold ?? 100,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    const notify = new actions.SnsAction(this.topic);
    for (const alarm of this.all) {
      alarm.addAlarmAction(notify);
      if (props.okActions) alarm.addOkAction(notify);
    }

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', { defaultInterval: Duration.hours(3) });
    const graph = (title: string, left: cloudwatch.IMetric[], width = 8) =>
      new cloudwatch.GraphWidget({ title, left, width, height: 6 });
    this.dashboard.addWidgets(new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: this.all, width: 24, height: 4 }));
    this.dashboard.addWidgets(
      graph('Stream Lambda: invocations and errors', [stream.metricInvocations(sum), stream.metricErrors(sum)]),
      graph('Kafka offset lag (max)', [this.offsetLag.metric]),
      graph('Stream Lambda duration (p99)', [stream.metricDuration({ period: PERIOD, statistic: 'p99' })]),
    );
    this.dashboard.addWidgets(
      graph('Errors by function', allFunctions.map((f) => f.metricErrors({ ...sum, label: f.node.scope?.node.id ?? f.node.id }))),
      graph('Throttles by function', allFunctions.map((f) => f.metricThrottles({ ...sum, label: f.node.scope?.node.id ?? f.node.id }))),
      graph('WebSocket API', [wsMetric('ConnectCount'), wsMetric('MessageCount'), wsMetric('IntegrationError'), wsMetric('ExecutionError')]),
    );
    this.dashboard.addWidgets(
      graph('HTTP API (/metrics, /health)', [props.httpApi.metricCount(sum), props.httpApi.metricServerError(sum), props.httpApi.metricClientError(sum)]),
      graph(
        'DynamoDB consumed write units',
        props.tables.map((t) => t.metric('ConsumedWriteCapacityUnits', { ...sum, label: t.node.id })),
      ),
      graph('Stale connections and failure queue', [
        this.staleConnections.metric,
        ...(this.failureQueueDepth ? [this.failureQueueDepth.metric] : []),
      ]),
    );
    if (replay) {
      this.dashboard.addWidgets(
        graph('Replay reader: invocations, errors, throttles', [replay.metricInvocations(sum), replay.metricErrors(sum), replay.metricThrottles(sum)], 12),
        graph('Replay reader duration (p50, p90)', [
          replay.metricDuration({ period: PERIOD, statistic: 'p50' }),
          replay.metricDuration({ period: PERIOD, statistic: 'p90' }),
        ], 12),
      );
    }
  }

  /** Every alarm of the construct. */
  public get all(): cloudwatch.Alarm[] {
    return [
      this.streamErrors,
      ...(this.streamIdle ? [this.streamIdle] : []),
      this.offsetLag,
      this.authorizerErrors,
      ...this.routeErrors,
      this.webSocketErrors,
      this.httpServerErrors,
      ...(this.failureQueueDepth ? [this.failureQueueDepth] : []),
      ...(this.replayErrors ? [this.replayErrors] : []),
      ...(this.replayDuration ? [this.replayDuration] : []),
      ...this.tableThrottles,
      ...this.throttles,
      this.staleConnections,
    ];
  }

  /** Alarms on the sum of `metrics`, split in groups a math expression can hold. */
  private sumAlarms(
    id: string,
    metrics: cloudwatch.IMetric[],
    label: string,
    alarmDescription: string,
    options: Omit<cloudwatch.CreateAlarmOptions, 'alarmDescription'>,
  ): cloudwatch.Alarm[] {
    const alarms: cloudwatch.Alarm[] = [];
    for (let i = 0; i < metrics.length; i += MAX_METRICS_PER_ALARM) {
      const group = metrics.slice(i, i + MAX_METRICS_PER_ALARM);
      const usingMetrics = Object.fromEntries(group.map((m, j) => [`m${j}`, m]));
      const n = i / MAX_METRICS_PER_ALARM;
      alarms.push(
        new cloudwatch.MathExpression({ expression: Object.keys(usingMetrics).join(' + '), usingMetrics, period: PERIOD, label }).createAlarm(
          this,
          n === 0 ? id : `${id}${n}`,
          { ...options, alarmDescription },
        ),
      );
    }
    return alarms;
  }
}
