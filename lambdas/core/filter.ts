/**
 * Subscription filters: normalisation, matching, and the index keys under which a subscription is
 * stored and by which a record finds it.
 *
 * A subscription is stored under the keys of its most selective non-empty field only, so a record
 * finds every subscription that could match it by looking up the keys it carries (its device id,
 * location, device type, alert level, record type, and `*`); the full filter is then checked in
 * memory. The cost of a lookup grows with the distinct keys of a batch and the subscriptions that
 * match them, never with the number of connections.
 */
import { RECORD_TYPES, type Filter, type NormalisedFilter, type RecordType, type StreamRecord } from './protocol';

function unique<T extends string>(values: readonly T[] | undefined): T[] {
  return [...new Set(values ?? [])].sort();
}

/** Fills defaults, sorts and de-duplicates values. `types` empty or missing means all types. */
export function normaliseFilter(filter: Filter | undefined): NormalisedFilter {
  const types = unique(filter?.types);
  return {
    types: types.length ? types : [...RECORD_TYPES].sort(),
    deviceIds: unique(filter?.deviceIds),
    deviceTypes: unique(filter?.deviceTypes),
    locations: unique(filter?.locations),
    alertLevels: unique(filter?.alertLevels),
  };
}

function allows(values: readonly string[], value: string): boolean {
  return values.length === 0 || values.includes(value);
}

/**
 * True when the record matches the filter: every non-empty field must match (AND), any value of a
 * field matches (OR), and `alertLevels` restricts alerts only.
 */
export function matchesFilter(filter: NormalisedFilter, record: StreamRecord): boolean {
  if (!filter.types.includes(record.type)) return false;
  const { data } = record;
  if (!allows(filter.deviceIds, data.deviceId)) return false;
  if (!allows(filter.deviceTypes, data.deviceType)) return false;
  if (!allows(filter.locations, data.location)) return false;
  if (record.type === 'alert' && !allows(filter.alertLevels, record.data.level)) return false;
  return true;
}

/** Prefixes of index keys. */
export const INDEX_PREFIX = {
  device: 'd#',
  location: 'l#',
  deviceType: 't#',
  alertLevel: 'a#',
  recordType: 'k#',
  all: '*',
} as const;

/**
 * The index keys a subscription is stored under: one per value of its most selective field
 * (device ids, then locations, then device types, then alert levels of an alerts-only filter, then
 * its single record type), or `*` when it restricts nothing.
 */
export function indexKeysForFilter(filter: NormalisedFilter): string[] {
  if (filter.deviceIds.length) return filter.deviceIds.map((id) => INDEX_PREFIX.device + id);
  if (filter.locations.length) return filter.locations.map((l) => INDEX_PREFIX.location + l);
  if (filter.deviceTypes.length) return filter.deviceTypes.map((t) => INDEX_PREFIX.deviceType + t);
  const onlyType: RecordType | undefined = filter.types.length === 1 ? filter.types[0] : undefined;
  if (onlyType === 'alert' && filter.alertLevels.length) {
    return filter.alertLevels.map((level) => INDEX_PREFIX.alertLevel + level);
  }
  if (onlyType) return [INDEX_PREFIX.recordType + onlyType];
  return [INDEX_PREFIX.all];
}

/** Every index key under which a subscription matching this record may be stored. */
export function indexKeysForRecord(record: StreamRecord): string[] {
  const { data } = record;
  const keys = [
    INDEX_PREFIX.device + data.deviceId,
    INDEX_PREFIX.location + data.location,
    INDEX_PREFIX.deviceType + data.deviceType,
    INDEX_PREFIX.recordType + record.type,
    INDEX_PREFIX.all,
  ];
  if (record.type === 'alert') keys.push(INDEX_PREFIX.alertLevel + record.data.level);
  return keys;
}
