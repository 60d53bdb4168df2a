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
import { fnv1a } from './hash';
import { RECORD_TYPES, utf8Length, type Filter, type NormalisedFilter, type RecordType, type StreamRecord } from './protocol';
import { mayRead } from './sites';

function unique<T extends string>(values: readonly T[] | undefined): T[] {
  return [...new Set(values ?? [])].sort();
}

/**
 * Fills defaults, sorts and de-duplicates values. `types` empty or missing means all types;
 * `sites` empty, missing or holding `*` means every site (before {@link narrowToSites}).
 */
export function normaliseFilter(filter: Filter | undefined): NormalisedFilter {
  const types = unique(filter?.types);
  const sites = unique(filter?.sites);
  return {
    types: types.length ? types : [...RECORD_TYPES].sort(),
    deviceIds: unique(filter?.deviceIds),
    deviceTypes: unique(filter?.deviceTypes),
    locations: unique(filter?.locations),
    alertLevels: unique(filter?.alertLevels),
    sites: sites.length === 0 || sites.includes('*') ? ['*'] : sites,
  };
}

/**
 * The filter narrowed to the sites a connection may see: its `sites` become the requested sites
 * within `allowed`, and its locations those within them. Undefined when nothing is left, i.e. the
 * filter names only sites or locations outside `allowed` (the caller answers `forbidden`).
 */
export function narrowToSites(filter: NormalisedFilter, allowed: readonly string[]): NormalisedFilter | undefined {
  const wantsAll = filter.sites.includes('*');
  let sites: string[];
  if (allowed.includes('*')) sites = filter.sites;
  else if (wantsAll) sites = [...allowed].sort();
  else sites = filter.sites.filter((site) => allowed.includes(site));
  if (sites.length === 0) return undefined;
  const locations = filter.locations.filter((location) => mayRead(sites, location));
  if (filter.locations.length && locations.length === 0) return undefined;
  return { ...filter, sites, locations };
}

/**
 * A filter as an index entry stores it: without the field its index key already stands for, and
 * with the remaining names hashed when they would take more than {@link HASH_ABOVE_BYTES}, so that
 * an entry's size is bounded whatever the filter's size (see ../adapters/dynamo-subscriptions.ts).
 * `sites` is never hashed: the delivery-side site check reads it.
 */
export interface IndexedFilter extends NormalisedFilter {
  /** `deviceIds`, `deviceTypes` and `locations` hold {@link hashName} values, not names. */
  hashed?: true;
}

/** Names of a stored filter beyond this many bytes are stored hashed. */
const HASH_ABOVE_BYTES = 512;

/** The short stand-in of a name in a hashed filter: FNV-1a in base 36 (at most 7 characters). */
function hashName(name: string): string {
  return fnv1a(name).toString(36);
}

/**
 * The filter to store under one index key (see {@link IndexedFilter}). A hash collision can only
 * widen a subscription within its own sites, never across them.
 */
export function compactFilter(filter: NormalisedFilter, indexKey: string): IndexedFilter {
  const keyed = (prefix: string, values: string[]) => (indexKey.startsWith(prefix) ? [] : values);
  const compact: IndexedFilter = {
    ...filter,
    deviceIds: keyed(INDEX_PREFIX.device, filter.deviceIds),
    locations: keyed(INDEX_PREFIX.location, filter.locations),
    deviceTypes: keyed(INDEX_PREFIX.deviceType, filter.deviceTypes),
  };
  const names = [...compact.deviceIds, ...compact.locations, ...compact.deviceTypes];
  if (names.reduce((bytes, name) => bytes + utf8Length(name) + 3, 0) <= HASH_ABOVE_BYTES) return compact;
  return {
    ...compact,
    deviceIds: compact.deviceIds.map(hashName),
    locations: compact.locations.map(hashName),
    deviceTypes: compact.deviceTypes.map(hashName),
    hashed: true,
  };
}

function allows(values: readonly string[], value: string): boolean {
  return values.length === 0 || values.includes(value);
}

/**
 * True when the record matches the filter: every non-empty field must match (AND), any value of a
 * field matches (OR), `alertLevels` restricts alerts only, and the record's site must be among the
 * filter's `sites` (a filter without them matches nothing).
 */
export function matchesFilter(filter: IndexedFilter, record: StreamRecord): boolean {
  if (!filter.types.includes(record.type)) return false;
  const { data } = record;
  if (!mayRead(filter.sites ?? [], data.location)) return false;
  const name = filter.hashed ? hashName : (value: string) => value;
  if (!allows(filter.deviceIds, name(data.deviceId))) return false;
  if (!allows(filter.deviceTypes, name(data.deviceType))) return false;
  if (!allows(filter.locations, name(data.location))) return false;
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
