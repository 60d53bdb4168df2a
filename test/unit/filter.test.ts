import fc from 'fast-check';
import {
  compactFilter,
  indexKeysForFilter,
  indexKeysForRecord,
  matchesFilter,
  narrowToSites,
  normaliseFilter,
} from '../../lambdas/core/filter';
import { mayRead } from '../../lambdas/core/sites';
import { routeRecords, type SubscriptionEntry } from '../../lambdas/core/fanout';
import { ALERT_LEVELS, RECORD_TYPES, type Filter, type StreamRecord } from '../../lambdas/core/protocol';
import { alertRecord, deviceRecord, streamRecord } from '../support/records';

// The shared builders, pinned to one device and fixed times so that each case reads on its own.
const reading = (over: Partial<{ deviceId: string; deviceType: string; location: string }> = {}): StreamRecord =>
  streamRecord(deviceRecord('pump-017', { location: 'plant-a/line-2', timestamp: 1764090000123, metrics: { temperature: 71.2 }, ...over }));

const alert = (level: 'info' | 'warning' | 'critical', over: Partial<{ deviceId: string; deviceType: string }> = {}): StreamRecord =>
  streamRecord(alertRecord('pump-017', { alertId: 'a-1', location: 'plant-a/line-2', level, timestamp: 1764090000456, ...over }));

const matches = (filter: Filter, record: StreamRecord) => matchesFilter(normaliseFilter(filter), record);

describe('filter semantics', () => {
  it('an empty filter matches every record of every type', () => {
    expect(matches({}, reading())).toBe(true);
    expect(matches({}, alert('info'))).toBe(true);
  });

  it('types restricts the kind of record, and defaults to all', () => {
    expect(normaliseFilter({}).types).toEqual(['alert', 'device_data']);
    expect(matches({ types: ['alert'] }, reading())).toBe(false);
    expect(matches({ types: ['alert'] }, alert('critical'))).toBe(true);
    expect(matches({ types: [] }, reading())).toBe(true);
  });

  it('any value within a field matches (OR)', () => {
    expect(matches({ deviceIds: ['motor-001', 'pump-017'] }, reading())).toBe(true);
    expect(matches({ deviceIds: ['motor-001'] }, reading())).toBe(false);
    expect(matches({ locations: ['plant-b/line-1', 'plant-a/line-2'] }, reading())).toBe(true);
  });

  it('every non-empty field must match (AND)', () => {
    expect(matches({ deviceTypes: ['pump'], locations: ['plant-a/line-2'] }, reading())).toBe(true);
    expect(matches({ deviceTypes: ['pump'], locations: ['plant-b/line-1'] }, reading())).toBe(false);
    expect(matches({ deviceTypes: ['motor'], locations: ['plant-a/line-2'] }, reading())).toBe(false);
  });

  it('an empty field does not restrict', () => {
    expect(matches({ deviceIds: [], deviceTypes: ['pump'], locations: [] }, reading())).toBe(true);
  });

  it('alertLevels restricts alerts only', () => {
    const filter = { alertLevels: ['critical' as const] };
    expect(matches(filter, alert('critical'))).toBe(true);
    expect(matches(filter, alert('warning'))).toBe(false);
    expect(matches(filter, reading())).toBe(true);
  });

  it('normalises values: sorted and unique', () => {
    expect(normaliseFilter({ deviceIds: ['b', 'a', 'b'] }).deviceIds).toEqual(['a', 'b']);
  });
});

describe('index keys', () => {
  it('store a subscription under its most selective field', () => {
    expect(indexKeysForFilter(normaliseFilter({ deviceIds: ['x', 'y'], deviceTypes: ['pump'] }))).toEqual(['d#x', 'd#y']);
    expect(indexKeysForFilter(normaliseFilter({ locations: ['l1'], deviceTypes: ['pump'] }))).toEqual(['l#l1']);
    expect(indexKeysForFilter(normaliseFilter({ deviceTypes: ['pump'] }))).toEqual(['t#pump']);
    expect(indexKeysForFilter(normaliseFilter({ types: ['alert'], alertLevels: ['critical'] }))).toEqual(['a#critical']);
    expect(indexKeysForFilter(normaliseFilter({ types: ['device_data'] }))).toEqual(['k#device_data']);
    expect(indexKeysForFilter(normaliseFilter({}))).toEqual(['*']);
  });
});

const name = fc.constantFrom('a', 'b', 'c');
const recordArb: fc.Arbitrary<StreamRecord> = fc.oneof(
  fc.record({ deviceId: name, deviceType: name, location: name }).map((o) => reading(o)),
  fc
    .record({ deviceId: name, deviceType: name, location: name, level: fc.constantFrom(...ALERT_LEVELS) })
    .map(({ level, ...o }) => {
      const r = alert(level, o);
      (r.data as { location: string }).location = o.location;
      return r;
    }),
);
const filterArb: fc.Arbitrary<Filter> = fc.record(
  {
    types: fc.subarray([...RECORD_TYPES]),
    deviceIds: fc.array(name, { maxLength: 2 }),
    deviceTypes: fc.array(name, { maxLength: 2 }),
    locations: fc.array(name, { maxLength: 2 }),
    alertLevels: fc.subarray([...ALERT_LEVELS]),
  },
  { requiredKeys: [] },
);

/** The definition of the design, written independently of the implementation. */
function specMatches(filter: Filter, record: StreamRecord): boolean {
  const ok = (values: readonly string[] | undefined, value: string) => !values?.length || values.includes(value);
  return (
    ok(filter.types, record.type) &&
    ok(filter.deviceIds, record.data.deviceId) &&
    ok(filter.deviceTypes, record.data.deviceType) &&
    ok(filter.locations, record.data.location) &&
    (record.type !== 'alert' || ok(filter.alertLevels, record.data.level))
  );
}

describe('filter properties', () => {
  it('matching agrees with the design definition', () => {
    fc.assert(fc.property(filterArb, recordArb, (f, r) => matches(f, r) === specMatches(f, r)), { numRuns: 2000 });
  });

  it('every matching subscription is found through the record index keys', () => {
    fc.assert(
      fc.property(filterArb, recordArb, (f, r) => {
        if (!matches(f, r)) return true;
        const recordKeys = new Set(indexKeysForRecord(r));
        return indexKeysForFilter(normaliseFilter(f)).some((key) => recordKeys.has(key));
      }),
      { numRuns: 2000 },
    );
  });

  it('routing delivers each record once to exactly the connections with a matching subscription', () => {
    const connArb = fc.array(fc.array(filterArb, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 6 });
    fc.assert(
      fc.property(connArb, fc.array(recordArb, { maxLength: 12 }), (connections, records) => {
        const index = new Map<string, SubscriptionEntry[]>();
        connections.forEach((filters, c) =>
          filters.forEach((f, s) => {
            const filter = normaliseFilter(f);
            for (const indexKey of indexKeysForFilter(filter)) {
              const list = index.get(indexKey) ?? [];
              list.push({ indexKey, connectionId: `c${c}`, subscriptionId: `s${s}`, filter });
              index.set(indexKey, list);
            }
          }),
        );
        const routed = routeRecords(records, indexKeysForRecord, index);
        return connections.every((filters, c) => {
          const expected = records.filter((r) => filters.some((f) => specMatches(f, r)));
          const got = routed.get(`c${c}`) ?? [];
          return got.length === expected.length && got.every((r, i) => r === expected[i]);
        });
      }),
      { numRuns: 500 },
    );
  });
});

describe('sites', () => {
  // Records of these tests are at locations `a`, `b`, `c`: each its own site.
  const sitesArb: fc.Arbitrary<string[]> = fc.oneof(fc.constant<string[]>(['*']), fc.subarray(['a', 'b', 'x']));

  it('a narrowed filter matches exactly what the filter matches within the allowed sites', () => {
    fc.assert(
      fc.property(filterArb, fc.subarray(['a', 'c', 'x', '*']), sitesArb, recordArb, (f, requested, allowed, r) => {
        const filter = normaliseFilter({ ...f, sites: requested });
        const narrowed = narrowToSites(filter, allowed);
        const within = mayRead(allowed, r.data.location) && mayRead(filter.sites, r.data.location);
        if (!narrowed) return !(matchesFilter(filter, r) && within);
        return matchesFilter(narrowed, r) === (matchesFilter(filter, r) && within);
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses a filter that names only other sites, and one for a connection with no sites', () => {
    expect(narrowToSites(normaliseFilter({ locations: ['plant-b/line-1'] }), ['plant-a'])).toBeUndefined();
    expect(narrowToSites(normaliseFilter({ sites: ['plant-b'] }), ['plant-a'])).toBeUndefined();
    expect(narrowToSites(normaliseFilter({}), [])).toBeUndefined();
    expect(narrowToSites(normaliseFilter({}), ['plant-b', 'plant-a'])?.sites).toEqual(['plant-a', 'plant-b']);
    expect(narrowToSites(normaliseFilter({}), ['*'])?.sites).toEqual(['*']);
  });

  it('a filter without sites, as an old index entry holds, matches nothing', () => {
    const { sites: _sites, ...old } = normaliseFilter({});
    expect(matchesFilter(old as never, reading())).toBe(false);
  });
});

describe('stored (compact) filters', () => {
  const long = (prefix: string) => fc.array(fc.string({ minLength: 1, maxLength: 128 }).map((s) => `${prefix}${s}`.slice(0, 128)), { maxLength: 100 });
  const bigFilterArb = fc.record(
    { types: fc.subarray([...RECORD_TYPES]), deviceIds: fc.array(name, { maxLength: 3 }), deviceTypes: fc.oneof(fc.array(name, { maxLength: 2 }), long('t')), locations: fc.oneof(fc.array(name, { maxLength: 2 }), long('plant-a/')), alertLevels: fc.subarray([...ALERT_LEVELS]) },
    { requiredKeys: [] },
  );

  it('match as the full filter for every record that reaches their index key, in bounded size', () => {
    fc.assert(
      fc.property(bigFilterArb, recordArb, (f, r) => {
        const filter = normaliseFilter(f);
        const recordKeys = new Set(indexKeysForRecord(r));
        return indexKeysForFilter(filter).every((key) => {
          const stored = compactFilter(filter, key);
          if (JSON.stringify(stored).length > 2200) return false;
          return !recordKeys.has(key) || matchesFilter(stored, r) === matchesFilter(filter, r);
        });
      }),
      { numRuns: 500 },
    );
  });
});
