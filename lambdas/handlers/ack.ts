/** The `ack` route: see ./message.ts. */
import { ackRouteHandler } from './message';

export const handler = ackRouteHandler();
