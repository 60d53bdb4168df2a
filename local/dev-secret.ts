/**
 * The local runtime's HS256 secret: `JWT_SECRET` when set, else 32 random bytes kept in
 * `.local/jwt-secret` (mode 0600, ignored by git), so that tokens from `npm run token` and tokens
 * minted before a restart stay valid across restarts of `npm start`.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Where the local secret is kept. */
export const DEV_SECRET_FILE = path.resolve(__dirname, '../.local/jwt-secret');

/** The secret from `JWT_SECRET`, else from {@link DEV_SECRET_FILE}, created when `create` and absent. */
export async function devSecret(options: { create: boolean; file?: string }): Promise<string | undefined> {
  const fromEnv = process.env.JWT_SECRET?.trim();
  if (fromEnv) return fromEnv;
  const file = options.file ?? DEV_SECRET_FILE;
  try {
    const stored = (await readFile(file, 'utf8')).trim();
    if (stored.length >= 32) return stored;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (!options.create) return undefined;
  const secret = randomBytes(32).toString('hex');
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(file, secret + '\n', { mode: 0o600 });
  return secret;
}
