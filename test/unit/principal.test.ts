import { principalContext, principalFromContext, principalOf } from '../../lambdas/core/auth';

describe('the principal a token gives a connection', () => {
  it('reads sites from a list or a comma-separated string, trimmed and without repeats', () => {
    expect(principalOf({ sub: 'op', sites: ['plant-a', 'plant-b', 'plant-a'] }).sites).toEqual(['plant-a', 'plant-b']);
    expect(principalOf({ sub: 'op', sites: ' plant-a , plant-b,' }).sites).toEqual(['plant-a', 'plant-b']);
  });

  it('sees no site when the claim is missing or of another type, and every site with *', () => {
    expect(principalOf({ sub: 'op' }).sites).toEqual([]);
    expect(principalOf({ sub: 'op', sites: 42 }).sites).toEqual([]);
    expect(principalOf({ sub: 'op', sites: ['plant-a', '*'] }).sites).toEqual(['*']);
  });

  it('reads the sites from the claim the deployment names', () => {
    expect(principalOf({ sub: 'op', sites: ['x'], 'custom:sites': 'plant-c' }, 'custom:sites').sites).toEqual(['plant-c']);
  });

  it('survives the trip through the flat authorizer context', () => {
    const principal = principalOf({ sub: 'operator-a', sites: ['plant-a'], roles: ['operator'], email: 'a@example.com' });
    const context = principalContext(principal);
    expect(context).toEqual({ sub: 'operator-a', sites: 'plant-a', roles: 'operator' });
    expect(principalFromContext(context)).toEqual(principal);
    expect(principalFromContext({ principalId: 'x' })).toBeUndefined();
    expect(principalFromContext(null)).toBeUndefined();
  });
});
