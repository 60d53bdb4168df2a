/** The `subscribe` route: see ./message.ts. */
import { subscribeRouteHandler } from './message';

export const handler = subscribeRouteHandler();
