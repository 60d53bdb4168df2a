/** The `subscribe` route: see ./message.ts. */
export { messageHandler as handler } from './message';
