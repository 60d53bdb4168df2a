/**
 * The latest reading of each device over DynamoDB, conflated: one item per location whose
 * `devices` map holds each device's newest reading. One write updates only the devices that
 * changed, so containers reading different partitions never overwrite each other's devices.
 * Capacity: an item holds 400 KB, about 2,000 devices of typical size per location.
 *
 * A directory item ({@link LATEST_TABLE.directoryKey}) lists every location, added to when a
 * location's item is created, so a snapshot of everything is a GetItem and BatchGetItems rather
 * than a Scan.
 */
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { DocumentSender } from './lean-dynamo';
import { LATEST_TABLE } from '../config/tables';
import type { LatestReadingsStore } from '../core/ports';
import type { DeviceRecord } from '../core/protocol';

/** Devices set by one UpdateItem, well inside the 4 KB update expression limit. */
const DEVICES_PER_UPDATE = 100;
const BATCH_GET_MAX = 100;

interface LatestItem {
  location: string;
  devices: Record<string, DeviceRecord>;
}

/** {@link LatestReadingsStore} over the latest readings table. */
export class DynamoLatestReadings implements LatestReadingsStore {
  calls = 0;

  constructor(
    private readonly doc: DocumentSender,
    private readonly tableName: string,
  ) {}

  async write(location: string, readings: readonly DeviceRecord[]): Promise<void> {
    // The one location name that would overwrite the directory is not stored.
    if (location === LATEST_TABLE.directoryKey) return;
    for (let i = 0; i < readings.length; i += DEVICES_PER_UPDATE) {
      const chunk = readings.slice(i, i + DEVICES_PER_UPDATE);
      // The map exists after the location's first write; only that first write is a Put.
      if (!(await this.update(location, chunk)) && !(await this.create(location, chunk))) {
        await this.update(location, chunk);
      }
    }
  }

  private async update(location: string, readings: readonly DeviceRecord[]): Promise<boolean> {
    this.calls++;
    const names: Record<string, string> = { '#devices': 'devices', '#pk': LATEST_TABLE.partitionKey };
    const values: Record<string, unknown> = {};
    const sets = readings.map((reading, i) => {
      names[`#d${i}`] = reading.deviceId;
      values[`:r${i}`] = reading;
      return `#devices.#d${i} = :r${i}`;
    });
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { [LATEST_TABLE.partitionKey]: location },
          UpdateExpression: `SET ${sets.join(', ')}`,
          ConditionExpression: 'attribute_exists(#pk)',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  private async create(location: string, readings: readonly DeviceRecord[]): Promise<boolean> {
    // Listed first: a crash between the two leaves a listed location without an item (read as
    // empty), never an item that no snapshot of everything finds.
    this.calls++;
    await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { [LATEST_TABLE.partitionKey]: LATEST_TABLE.directoryKey },
        UpdateExpression: 'ADD #locations :location',
        ExpressionAttributeNames: { '#locations': 'locations' },
        ExpressionAttributeValues: { ':location': new Set([location]) },
      }),
    );
    this.calls++;
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { [LATEST_TABLE.partitionKey]: location, devices: Object.fromEntries(readings.map((r) => [r.deviceId, r])) },
          ConditionExpression: 'attribute_not_exists(#pk)',
          ExpressionAttributeNames: { '#pk': LATEST_TABLE.partitionKey },
        }),
      );
      return true;
    } catch (error) {
      // Another container created it meanwhile: update it instead.
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  async read(locations?: readonly string[]): Promise<DeviceRecord[]> {
    const items = await this.get([...new Set(locations ?? (await this.directory()))].filter((l) => l !== LATEST_TABLE.directoryKey));
    return items.flatMap((item) => Object.values(item.devices ?? {}));
  }

  /** Every location that has an item. */
  private async directory(): Promise<string[]> {
    this.calls++;
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { [LATEST_TABLE.partitionKey]: LATEST_TABLE.directoryKey } }),
    );
    return [...((out.Item?.locations as Set<string> | undefined) ?? [])];
  }

  private async get(locations: string[]): Promise<LatestItem[]> {
    const items: LatestItem[] = [];
    let keys = locations.map((location) => ({ [LATEST_TABLE.partitionKey]: location }));
    while (keys.length) {
      const chunk = keys.slice(0, BATCH_GET_MAX);
      keys = keys.slice(BATCH_GET_MAX);
      this.calls++;
      const out = await this.doc.send(new BatchGetCommand({ RequestItems: { [this.tableName]: { Keys: chunk } } }));
      items.push(...((out.Responses?.[this.tableName] ?? []) as LatestItem[]));
      const unprocessed = out.UnprocessedKeys?.[this.tableName]?.Keys;
      if (unprocessed?.length) keys.push(...(unprocessed as typeof keys));
    }
    return items;
  }
}
