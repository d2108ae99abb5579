// Reading a server's /metrics (the Prometheus text format) the way Prometheus would.

/** The exposition text of /metrics. */
export async function scrape(url: string): Promise<string> {
  const response = await fetch(`${url}/metrics`);
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
  return response.text();
}

/** The value of one sample (`name{labels} value`, labels as the server writes them), or undefined. */
export async function sample(url: string, series: string): Promise<number | undefined> {
  const line = (await scrape(url)).split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
