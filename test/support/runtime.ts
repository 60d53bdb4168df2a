/**
 * The local runtime (local/runtime.ts) as the suites start it: free ports, no simulated devices,
 * and no dashboard files unless a suite serves them (the browser suites pass the built dashboard).
 * Every suite that runs the product in-process starts it here, so a new default reaches them all.
 */
import { startLocalRuntime, type LocalRuntime, type LocalRuntimeOptions } from '../../local/runtime';

export function startTestRuntime(options: Partial<LocalRuntimeOptions> = {}): Promise<LocalRuntime> {
  return startLocalRuntime({ dashboardPort: 0, wsPort: 0, simulator: false, frontendDir: __dirname, ...options });
}

/** Closes the clients a test opened and waits until the runtime has handled their disconnects. */
export async function closeClients(runtime: LocalRuntime, clients: { close(): Promise<unknown> }[]): Promise<void> {
  await Promise.all(clients.splice(0).map((client) => client.close()));
  await runtime.gateway.settle();
}
