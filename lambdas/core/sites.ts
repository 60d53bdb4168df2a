/**
 * Sites: a location's first path segment (`plant-a/line-2` → `plant-a`). A connection sees only
 * the sites its token names (see {@link Principal}); `*` stands for every site.
 */
import type { Principal } from './auth';

/** The site of a location: its first `/`-separated segment. */
export function siteOf(location: string): string {
  const slash = location.indexOf('/');
  return slash === -1 ? location : location.slice(0, slash);
}

/** Whether a connection with these sites may see a record or alert at this location. */
export function mayRead(sites: Principal['sites'], location: string): boolean {
  return sites.includes('*') || sites.includes(siteOf(location));
}
