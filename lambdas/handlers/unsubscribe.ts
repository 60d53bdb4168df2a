/** The `unsubscribe` route: see ./message.ts. */
import { subscriptionRouteHandler } from './message';

export const handler = subscriptionRouteHandler();
