import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subs from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';

/** The name of the custom metric counting connections found gone when posting (Powertools EMF). */
export const STALE_CONNECTIONS_METRIC = 'websocket_stale_connections_total';

/** Properties of {@link OperationalAlarms}. */
export interface OperationalAlarmsProps {
  /** The stream function (errors, offset lag). */
  readonly streamFunction: lambda.IFunction;
  /** Every function of the app (throttles). */
  readonly functions: lambda.IFunction[];
  /** Namespace of the EMF metrics. */
  readonly metricsNamespace: string;
  /** Powertools service name: the `service` dimension Powertools Metrics adds to every metric. */
  readonly serviceName: string;
  /** Alarm when the consumer group lags the topic by more records than this. @default 1000 */
  readonly offsetLagThreshold?: number;
  /** Alarm when more connections than this are found stale within 5 minutes. @default 100 */
  readonly staleConnectionsThreshold?: number;
  /** Email subscribed to the alarm topic. @default no subscription */
  readonly email?: string;
}

/** CloudWatch math expressions over more metrics than this cannot back an alarm. */
const MAX_METRICS_PER_ALARM = 10;

/**
 * CloudWatch alarms on the health of the pipeline, each notifying one SNS topic: stream errors,
 * Kafka offset lag, throttles of any function, and stale WebSocket connections.
 */
export class OperationalAlarms extends Construct {
  /** The topic every alarm notifies. */
  public readonly topic: sns.Topic;
  /** The stream function reported errors. */
  public readonly streamErrors: cloudwatch.Alarm;
  /** The consumer fell behind the topics. */
  public readonly offsetLag: cloudwatch.Alarm;
  /** A function was throttled (one alarm per group of up to ten functions). */
  public readonly throttles: cloudwatch.Alarm[];
  /** Many pushes found their connection gone. */
  public readonly staleConnections: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: OperationalAlarmsProps) {
    super(scope, id);
    this.topic = new sns.Topic(this, 'Topic', { displayName: 'IoT dashboard alarms', enforceSSL: true });
    if (props.email) this.topic.addSubscription(new subs.EmailSubscription(props.email));
    const notify = new actions.SnsAction(this.topic);
    const period = Duration.minutes(5);

    this.streamErrors = props.streamFunction
      .metricErrors({ period, statistic: cloudwatch.Stats.SUM })
      .createAlarm(this, 'StreamErrors', {
        alarmDescription: 'The Kafka stream Lambda failed; records are being retried or sent to the failure destination.',
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });

    // OffsetLag: records between the topic's end and the consumer group's committed offset.
    this.offsetLag = new cloudwatch.Metric({
      namespace: 'AWS/Lambda',
      metricName: 'OffsetLag',
      dimensionsMap: { FunctionName: props.streamFunction.functionName },
      statistic: cloudwatch.Stats.MAXIMUM,
      period,
    }).createAlarm(this, 'OffsetLag', {
      alarmDescription: 'The stream Lambda is falling behind the Kafka topics; the dashboard shows stale data.',
      threshold: props.offsetLagThreshold ?? 1000,
      evaluationPeriods: 3,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    this.throttles = [];
    for (let i = 0; i < props.functions.length; i += MAX_METRICS_PER_ALARM) {
      const group = props.functions.slice(i, i + MAX_METRICS_PER_ALARM);
      const usingMetrics = Object.fromEntries(
        group.map((f, j) => [`t${j}`, f.metricThrottles({ period, statistic: cloudwatch.Stats.SUM })]),
      );
      this.throttles.push(
        new cloudwatch.MathExpression({
          expression: Object.keys(usingMetrics).join(' + '),
          usingMetrics,
          period,
          label: 'Throttles',
        }).createAlarm(this, i === 0 ? 'Throttles' : `Throttles${i / MAX_METRICS_PER_ALARM}`, {
          alarmDescription: 'A Lambda of the dashboard was throttled: raise its concurrency or the account limit.',
          threshold: 1,
          evaluationPeriods: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
    }

    this.staleConnections = new cloudwatch.Metric({
      namespace: props.metricsNamespace,
      metricName: STALE_CONNECTIONS_METRIC,
      dimensionsMap: { service: props.serviceName },
      statistic: cloudwatch.Stats.SUM,
      period,
    }).createAlarm(this, 'StaleConnections', {
      alarmDescription: 'Many pushes found their WebSocket connection gone: clients are dropping or $disconnect is failing.',
      threshold: props.staleConnectionsThreshold ?? 100,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    for (const alarm of [this.streamErrors, this.offsetLag, ...this.throttles, this.staleConnections]) {
      alarm.addAlarmAction(notify);
      alarm.addOkAction(notify);
    }
  }
}
