/**
 * Builds the dashboard into frontend/dist: index.html, app.js (Chart.js and every dependency
 * bundled, no CDN) and app.css. `npm run build:frontend`. config.json is not part of the build:
 * the CDK stack writes it beside the page at deploy and the local runtime serves its own.
 *
 * Options: `--watch` rebuilds on change; `--dev` skips minification.
 */
import { build, context, type BuildOptions } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

const root = __dirname;
const outdir = join(root, 'dist');
const dev = process.argv.includes('--dev');

/** The esbuild options, exported for tests and tools that build the page themselves. */
export const buildOptions: BuildOptions = {
  entryPoints: { app: join(root, 'src/main.ts') },
  outdir,
  bundle: true,
  format: 'iife',
  platform: 'browser',
  // Chromium, Firefox and Safari versions that shipped in 2021 or later.
  target: ['chrome96', 'firefox95', 'safari15'],
  minify: !dev,
  sourcemap: true,
  legalComments: 'linked',
  logLevel: 'warning',
  metafile: true,
  // One copy of Chart.js, its ES build, for the page (which `require`s it, see src/chart-vendor.ts)
  // and for chartjs-adapter-date-fns (which `import`s it).
  alias: { 'chart.js': require.resolve('chart.js').replace(/chart\.cjs$/, 'chart.js') },
};

/** Builds frontend/dist once; returns the bundle's size in bytes. */
export async function buildFrontend(): Promise<number> {
  await rm(outdir, { recursive: true, force: true });
  await mkdir(outdir, { recursive: true });
  const result = await build(buildOptions);
  await copyFile(join(root, 'src/index.html'), join(outdir, 'index.html'));
  const outputs = result.metafile?.outputs ?? {};
  return Object.entries(outputs)
    .filter(([file]) => file.endsWith('.js'))
    .reduce((sum, [, output]) => sum + output.bytes, 0);
}

async function main(): Promise<void> {
  if (process.argv.includes('--watch')) {
    await mkdir(outdir, { recursive: true });
    await copyFile(join(root, 'src/index.html'), join(outdir, 'index.html'));
    const ctx = await context(buildOptions);
    await ctx.watch();
    console.log(`watching frontend/src, writing ${outdir}`);
    return;
  }
  const bytes = await buildFrontend();
  console.log(`frontend built: ${outdir} (app.js ${(bytes / 1024).toFixed(0)} KiB)`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
