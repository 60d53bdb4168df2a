import type { NormalisedFilter } from '../../lambdas/core/protocol';
import { CursorWindow } from '../../frontend/src/cursor-window';
import { SubscriptionBook } from '../../frontend/src/subscription-book';

const normalised = (deviceIds: string[] = []): NormalisedFilter => ({
  types: ['alert', 'device_data'],
  deviceIds,
  deviceTypes: [],
  locations: [],
  alertLevels: [],
  sites: ['*'],
});

describe('SubscriptionBook (restore bookkeeping)', () => {
  test('ids are fresh and never collide with ids the user chose', () => {
    const book = new SubscriptionBook();
    book.set('s2', {});
    expect([book.nextId(), book.nextId()]).toEqual(['s1', 's3']);
  });

  test('every wanted subscription is re-sent after a reconnect, with its original filter', () => {
    const book = new SubscriptionBook();
    book.set('s1', { deviceIds: ['pump-001'] });
    book.set('s2', { alertLevels: ['critical'] });
    book.confirm('s1', normalised(['pump-001']));
    book.confirm('s2', normalised());
    book.markAllPending();
    expect(book.pendingIds()).toEqual(['s1', 's2']);
    expect(book.restoreFrames()).toEqual([
      { action: 'subscribe', id: 's1', filter: { deviceIds: ['pump-001'] } },
      { action: 'subscribe', id: 's2', filter: { alertLevels: ['critical'] } },
    ]);
  });

  test('re-subscribing an id replaces its filter; unsubscribing forgets it', () => {
    const book = new SubscriptionBook();
    book.set('s1', { deviceIds: ['a'] });
    book.set('s1', { deviceIds: ['b'] });
    book.set('s2', {});
    expect(book.remove('s2')).toBe(true);
    expect(book.remove('s2')).toBe(false);
    expect(book.restoreFrames()).toEqual([{ action: 'subscribe', id: 's1', filter: { deviceIds: ['b'] } }]);
  });

  test('a refused filter is shown with its reason but never re-sent', () => {
    const book = new SubscriptionBook();
    book.set('s1', { deviceIds: [''] });
    expect(book.reject('s1', 'deviceIds.0: too short')).toBe(true);
    expect(book.get('s1')).toMatchObject({ state: 'rejected', error: 'deviceIds.0: too short' });
    book.markAllPending();
    expect(book.restoreFrames()).toEqual([]);
    // A confirmed subscription is not turned into a rejection by a later, unrelated error.
    book.set('s2', {});
    book.confirm('s2', normalised());
    expect(book.reject('s2', 'rate_limited')).toBe(false);
  });

  test('a late reply for an id already removed is ignored', () => {
    const book = new SubscriptionBook();
    expect(book.confirm('gone', normalised())).toBe(false);
    expect(book.list()).toEqual([]);
  });
});

describe('CursorWindow (duplicate records)', () => {
  test('admits a cursor once', () => {
    const window = new CursorWindow(10);
    expect(window.admit('device-data:0:1')).toBe(true);
    expect(window.admit('device-data:0:1')).toBe(false);
    expect(window.admit('device-data:1:1')).toBe(true);
  });

  test('memory stays bounded: the oldest cursor is forgotten first', () => {
    const window = new CursorWindow(3);
    for (const offset of [1, 2, 3, 4]) window.admit(`t:0:${offset}`);
    expect(window.size).toBe(3);
    expect(window.admit('t:0:4')).toBe(false);
    expect(window.admit('t:0:1')).toBe(true);
  });
});
