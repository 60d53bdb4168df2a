/** The `ping` route: see ./message.ts. */
import { tablelessRouteHandler } from './message';

export const handler = tablelessRouteHandler('ping');
