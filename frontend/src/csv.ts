/** CSV export of chart data (RFC 4180: CRLF line ends, fields quoted when they need it). */
import type { Point } from './model';

export type CsvCell = string | number | null | undefined;

/** Quotes a field when it holds a comma, quote, CR or LF; neutralises spreadsheet formulas. */
export function csvField(value: CsvCell): string {
  if (value === null || value === undefined) return '';
  let text = typeof value === 'number' ? String(value) : value;
  // A cell starting with = + - @ runs as a formula in spreadsheets (CSV injection); device ids come from devices.
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function toCsv(header: readonly string[], rows: readonly (readonly CsvCell[])[]): string {
  return [header, ...rows].map((row) => row.map(csvField).join(',')).join('\r\n') + '\r\n';
}

/**
 * The plotted points of one metric chart, one row per point, ordered by time then device:
 * `timestamp` (ISO-8601 UTC), `epoch_ms`, `device_id`, `<metric>`.
 */
export function seriesToCsv(metric: string, series: ReadonlyMap<string, readonly Point[]>): string {
  const rows: [string, number, string, number][] = [];
  for (const [deviceId, points] of series) {
    for (const point of points) rows.push([new Date(point.x).toISOString(), point.x, deviceId, point.y]);
  }
  rows.sort((a, b) => a[1] - b[1] || a[2].localeCompare(b[2]));
  return toCsv(['timestamp', 'epoch_ms', 'device_id', metric], rows);
}

/** A file name safe on every OS: `<stem>-<UTC time>.<ext>`. */
export function exportFileName(stem: string, ext: string, now: Date = new Date()): string {
  const safe = stem.replace(/[^A-Za-z0-9_-]+/g, '_').replace(/^_+|_+$/g, '') || 'chart';
  const stamp = now.toISOString().replace(/[:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${safe}-${stamp}.${ext}`;
}
