/** The `unsubscribe` route: see ./message.ts. */
export { messageHandler as handler } from './message';
