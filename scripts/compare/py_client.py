"""The Python connector's side of the driver comparison (see README.md beside this file).

Usage: py_client.py <workload> [N]   (workloads as in examples/compare_client.rs, plus
"cloudfetch_stream": fetchmany_arrow() batch by batch, for the time to the first batch).
Reads DATABRICKS_HOST (http://127.0.0.1:PORT), DATABRICKS_HTTP_PATH and DATABRICKS_TOKEN and
prints one JSON line with the workload's wall-clock and CPU time (connect and close excluded).
"""

import json
import os
import sys
import time

from databricks import sql

DEFAULTS = {
    "select1": 2000,
    "cloudfetch": 10_000_000,
    "cloudfetch_stream": 10_000_000,
    "inline": 1_000_000,
    "rows": 1_000_000,
    "columns": 200,
}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in DEFAULTS:
        sys.exit("usage: py_client.py <%s> [N]" % "|".join(DEFAULTS))
    workload = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else DEFAULTS[workload]
    host = os.environ["DATABRICKS_HOST"].rstrip("/")
    path = os.environ["DATABRICKS_HTTP_PATH"]
    # The connector always prefixes https:// to server_hostname; _connection_uri is its way
    # to a plain-HTTP endpoint (the mock on loopback). Telemetry off, as for the other drivers.
    conn = sql.connect(
        server_hostname=host.split("://", 1)[-1].split(":")[0],
        http_path=path,
        access_token=os.environ["DATABRICKS_TOKEN"],
        _connection_uri=host + path,
        enable_telemetry=False,
        use_cloud_fetch=(workload != "inline"),
    )
    cursor = conn.cursor()
    rows = 0
    first = None
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    if workload == "select1":
        for _ in range(n):
            cursor.execute("SELECT 1")
            rows += len(cursor.fetchall())
    elif workload == "columns":
        for _ in range(n):
            cursor.columns(
                catalog_name="samples",
                schema_name="tpch",
                table_name="%",
                column_name="%",
            )
            rows += cursor.fetchall_arrow().num_rows
    else:
        cursor.execute("SELECT * FROM mock.rows(%d)" % n)
        if workload == "rows":
            rows = len(cursor.fetchall())
        elif workload == "cloudfetch_stream":
            while True:
                batch = cursor.fetchmany_arrow(100_000)
                if batch.num_rows == 0:
                    break
                if first is None:
                    first = time.perf_counter() - t0
                rows += batch.num_rows
        else:
            rows = cursor.fetchall_arrow().num_rows
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    cursor.close()
    conn.close()
    print(
        json.dumps(
            {
                "driver": "python",
                "workload": workload,
                "rows": rows,
                "iterations": n if workload in ("select1", "columns") else 1,
                "wall_s": wall,
                "cpu_s": cpu,
                "first_batch_s": first,
            }
        )
    )


if __name__ == "__main__":
    main()
