import { mayRead, siteOf } from '../../lambdas/core/sites';

describe('sites', () => {
  it('are the first segment of a location', () => {
    expect(siteOf('plant-a/line-2')).toBe('plant-a');
    expect(siteOf('plant-a')).toBe('plant-a');
    expect(siteOf('plant-a/line-2/cell-4')).toBe('plant-a');
  });

  it('limit what a connection may see; * sees every site, none sees nothing', () => {
    expect(mayRead(['plant-a'], 'plant-a/line-1')).toBe(true);
    expect(mayRead(['plant-a'], 'plant-b/line-1')).toBe(false);
    // A site is a whole segment, not a prefix.
    expect(mayRead(['plant-a'], 'plant-ab/line-1')).toBe(false);
    expect(mayRead(['*'], 'plant-b/line-1')).toBe(true);
    expect(mayRead([], 'plant-a/line-1')).toBe(false);
  });
});
