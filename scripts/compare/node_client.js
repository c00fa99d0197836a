// The Node.js driver's side of the driver comparison (see README.md beside this file).
//
// Usage: node node_client.js <workload> [N]   (workloads as in examples/compare_client.rs).
// Reads DATABRICKS_HOST (http://127.0.0.1:PORT), DATABRICKS_HTTP_PATH and DATABRICKS_TOKEN and
// prints one JSON line with the workload's wall-clock and CPU time (connect and close excluded).
//
// "cloudfetch" and "inline" read with `disableRowMaterialization`: the driver downloads,
// decompresses and decodes every Arrow batch but builds no row objects (its closest equivalent
// of an Arrow read; it has no public Arrow API). "rows" builds the row objects (`fetchAll()`).
'use strict';

const { DBSQLClient, DBSQLLogger, LogLevel } = require('@databricks/sql');

const DEFAULTS = {
  select1: 2000,
  cloudfetch: 10_000_000,
  inline: 1_000_000,
  rows: 1_000_000,
  columns: 200,
};

// The driver always connects with HTTPS (`https: true` in getConnectionOptions); the mock
// serves plain HTTP on loopback, so this subclass turns that one option off and keeps the rest.
class PlainHttpClient extends DBSQLClient {
  getConnectionOptions(options) {
    return { ...super.getConnectionOptions(options), https: false };
  }
}

function cpuSeconds() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

async function main() {
  const workload = process.argv[2];
  if (!(workload in DEFAULTS)) {
    console.error(`usage: node_client.js <${Object.keys(DEFAULTS).join('|')}> [N]`);
    process.exit(2);
  }
  const n = process.argv[3] ? Number(process.argv[3]) : DEFAULTS[workload];
  const url = new URL(process.env.DATABRICKS_HOST);
  const client = new PlainHttpClient({ logger: new DBSQLLogger({ level: LogLevel.error }) });
  await client.connect({
    host: url.hostname,
    port: Number(url.port),
    path: process.env.DATABRICKS_HTTP_PATH,
    token: process.env.DATABRICKS_TOKEN,
    telemetryEnabled: false,
    disableRowMaterialization: workload === 'cloudfetch' || workload === 'inline',
  });
  const session = await client.openSession();
  let rows = 0;
  let first = null;
  const cpu0 = cpuSeconds();
  const t0 = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - t0) / 1e9;
  if (workload === 'select1') {
    for (let i = 0; i < n; i++) {
      const op = await session.executeStatement('SELECT 1');
      rows += (await op.fetchAll()).length;
      await op.close();
    }
  } else if (workload === 'columns') {
    for (let i = 0; i < n; i++) {
      const op = await session.getColumns({
        catalogName: 'samples',
        schemaName: 'tpch',
        tableName: '%',
        columnName: '%',
      });
      rows += (await op.fetchAll()).length;
      await op.close();
    }
  } else {
    const op = await session.executeStatement(`SELECT * FROM mock.rows(${n})`, {
      useCloudFetch: workload !== 'inline',
    });
    if (workload === 'rows') {
      rows = (await op.fetchAll()).length;
    } else {
      do {
        const chunk = await op.fetchChunk({ maxRows: 100000, disableBuffering: true });
        if (chunk.length > 0 && first === null) {
          first = elapsed();
        }
        rows += chunk.length;
      } while (await op.hasMoreRows());
    }
    await op.close();
  }
  const wall = elapsed();
  const cpu = cpuSeconds() - cpu0;
  await session.close();
  await client.close();
  console.log(
    JSON.stringify({
      driver: 'node',
      workload,
      rows,
      iterations: workload === 'select1' || workload === 'columns' ? n : 1,
      wall_s: wall,
      cpu_s: cpu,
      first_batch_s: first,
    }),
  );
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
