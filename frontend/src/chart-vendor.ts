/**
 * Chart.js, registered with the parts the dashboard uses and the date-fns time adapter.
 *
 * Chart.js 4 ships as an ES module only (its `require` entry is a separate CommonJS build), while
 * this repository's tsconfig compiles `.ts` files as CommonJS (`module: node16`), where a static
 * `import` of an ES module is a type error. So the types come from an `import type` that resolves
 * as ESM, the value from `require`, and frontend/build.ts aliases `chart.js` to its ES build so the
 * adapter and the page share one copy of Chart.js.
 */
import type * as ChartJs from 'chart.js' with { 'resolution-mode': 'import' };
import 'chartjs-adapter-date-fns';

const chartJs = require('chart.js') as typeof ChartJs;

export const { Chart } = chartJs;
export type { ChartDataset, Plugin } from 'chart.js' with { 'resolution-mode': 'import' };
export type Chart<
  TType extends ChartJs.ChartType = ChartJs.ChartType,
  TData = ChartJs.DefaultDataPoint<TType>,
  TLabel = unknown,
> = ChartJs.Chart<TType, TData, TLabel>;

Chart.register(
  chartJs.LineController,
  chartJs.LineElement,
  chartJs.PointElement,
  chartJs.LinearScale,
  chartJs.TimeScale,
  chartJs.BarController,
  chartJs.BarElement,
  chartJs.CategoryScale,
  chartJs.DoughnutController,
  chartJs.ArcElement,
  chartJs.Legend,
  chartJs.Tooltip,
);
Chart.defaults.animation = false;
Chart.defaults.font.family = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
Chart.defaults.color = '#3b4352';
