/** The `ping` route: see ./message.ts. */
export { messageHandler as handler } from './message';
