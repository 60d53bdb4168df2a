/** The `$default` route: see ./message.ts. */
export { messageHandler as handler } from './message';
