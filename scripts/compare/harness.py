"""Runs the driver comparison (see README.md beside this file); started by run.sh.

Starts the standalone mock warehouse in its own process, then runs every workload with every
driver in turn (A B C, A B C, ...: one warm-up round, then --runs measured rounds), each run in
a process of its own. Per run it records the workload's wall-clock and CPU time (measured by
the client program around the workload only) and the process's peak RSS (from wait4). Prints
a table of medians, spreads (min-max) and ratios against this driver, and writes it as
markdown (plus every sample as JSON) under out/.
"""

import argparse
import datetime
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# A run still going after this many seconds is killed and counted as a failure.
RUN_TIMEOUT = 300


class Variant:
    """One driver's way of running one workload."""

    def __init__(self, label, argv, workload, api, note=""):
        self.label = label
        self.argv = argv
        self.workload = workload
        self.api = api
        self.note = note
        self.samples = []
        self.error = None


def example(root, name):
    """A release example's executable, in CARGO_TARGET_DIR when it is set (as cargo does)."""
    target = os.path.join(root, os.environ.get("CARGO_TARGET_DIR") or "target")
    return os.path.join(target, "release", "examples", name)


def rust(root, workload, api):
    exe = example(root, "compare_client")
    return Variant("databricks-sql (Rust)", [exe, workload], workload, api)


def python(workload, api):
    exe = os.path.join(HERE, ".venv", "bin", "python")
    return Variant(
        "Python connector", [exe, os.path.join(HERE, "py_client.py"), workload], workload, api
    )


def node(workload, api, note=""):
    return Variant(
        "Node.js driver",
        ["node", os.path.join(HERE, "node_client.js"), workload],
        workload,
        api,
        note,
    )


# Where the small-statement workloads, (a) and (e), run: both the client and the mock on one
# vCPU, then on two different ones. A round trip of theirs costs two wake-ups of the other
# process, and on a VM waking a process on another (idle, halted) vCPU can cost several times
# the driver's own work, so an unpinned run measures mostly where the scheduler happened to put
# the two. The larger workloads use every vCPU, unpinned.
SMALL_PLACEMENTS = (
    ("one", "client and mock on one vCPU"),
    ("two", "client and mock on two different vCPUs"),
)


def workloads(root, quick):
    """The workloads: (key, title, size, per-iteration unit or None, variants, placement).

    `placement` is None (unpinned) or a key of SMALL_PLACEMENTS."""
    n_small = 200 if quick else 2000
    n_cloud = 1_000_000 if quick else 10_000_000
    n_rows = 100_000 if quick else 1_000_000
    n_meta = 20 if quick else 200
    no_rows = "Arrow batches decoded, no row objects (`disableRowMaterialization`)"
    small = [
        (
            "select1",
            f"(a) {n_small:,} x `SELECT 1`, one session",
            n_small,
            "round trip",
            lambda: [
                rust(root, "select1", "`Session::query`, current-thread runtime"),
                python("select1", "`cursor.execute` + `fetchall()`"),
                node("select1", "`executeStatement` + `fetchAll()` + `close()`"),
            ],
        ),
    ]
    large = [
        (
            "cloudfetch",
            f"(b) `SELECT * FROM mock.rows({n_cloud})`, CloudFetch + LZ4, read into Arrow",
            n_cloud,
            None,
            [
                rust(root, "cloudfetch", "`next_batch()` streamed"),
                rust(root, "cloudfetch_all", "`fetch_all()` (every batch held)"),
                python("cloudfetch", "`fetchall_arrow()` (one table)"),
                python("cloudfetch_stream", "`fetchmany_arrow(100000)` streamed"),
                node("cloudfetch", "`fetchChunk` streamed", no_rows),
            ],
        ),
        (
            "inline",
            f"(c) `SELECT * FROM mock.rows({n_rows})` inline (CloudFetch off), Arrow + LZ4",
            n_rows,
            None,
            [
                rust(root, "inline", "`next_batch()` streamed, `ExecuteOptions::cloud_fetch(false)`"),
                python("inline", "`fetchall_arrow()`, `use_cloud_fetch=False`"),
                node("inline", "`fetchChunk` streamed, `useCloudFetch: false`", no_rows),
            ],
        ),
        (
            "rows",
            f"(d) `SELECT * FROM mock.rows({n_rows})` through the row API (driver defaults: CloudFetch)",
            n_rows,
            None,
            [
                rust(root, "rows", "typed rows: `fetch_all_as` into a struct (`DateTime<Utc>` via chrono serde)"),
                python("rows", "`fetchall()`: `Row` tuples"),
                node("rows", "`fetchAll()`: JS objects"),
            ],
        ),
    ]
    small.append(
        (
            "columns",
            f"(e) {n_meta} x `columns(samples, tpch, %, %)` (61 rows each), one session",
            n_meta,
            "call",
            lambda: [
                rust(root, "columns", "`Session::columns` + `fetch_all()`, current-thread runtime"),
                python("columns", "`cursor.columns` + `fetchall_arrow()`"),
                node("columns", "`getColumns` + `fetchAll()` + `close()`"),
            ],
        )
    )
    pinned = []
    if can_pin():
        for key, title, size, unit, make in small:
            for placement, where in SMALL_PLACEMENTS:
                pinned.append((key, f"{title}, {where}", size, unit, make(), placement))
    else:
        pinned = [(key, title, size, unit, make(), None) for key, title, size, unit, make in small]
    select1 = [w for w in pinned if w[0] == "select1"]
    columns = [w for w in pinned if w[0] == "columns"]
    return select1 + [w + (None,) for w in large] + columns


def start_mock(root):
    exe = example(root, "mock_warehouse")
    proc = subprocess.Popen(
        [exe, "--port", "0", "--keep-files"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    found = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(found) < 3:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.match(r"\s+export (DATABRICKS_\w+)=(\S+)", line)
        if m:
            found[m.group(1)] = m.group(2)
    if len(found) < 3:
        proc.kill()
        sys.exit("the mock warehouse did not print its connection details")
    return proc, found


def can_pin():
    """Whether the small workloads can be pinned: Linux (`sched_setaffinity`, `/proc`), two
    vCPUs or more."""
    return hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2


def cpus_for(placement):
    """(the mock's vCPUs, the client's vCPUs) for a placement; (None, None) where nothing can
    be pinned, (every vCPU, None) for an unpinned workload."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if placement == "one":
        return {cpus[0]}, {cpus[0]}
    if placement == "two":
        return {cpus[1]}, {cpus[0]}
    return set(cpus), None


def pin_mock(mock, cpus):
    """Pins every thread of the mock's process to `cpus` (threads it starts later inherit);
    nothing when `cpus` is None."""
    if cpus is None:
        return
    for tid in os.listdir(f"/proc/{mock.pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except (ProcessLookupError, FileNotFoundError):
            pass  # a thread that ended meanwhile


def communicate_and_wait4(argv, env, timeout, cpus=None):
    """Runs argv to its end; returns (exit code, stdout, stderr, rusage of that process).

    The process is killed after `timeout` seconds (a run that hangs is an error). With `cpus`,
    the process runs on those vCPUs only."""
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, preexec_fn=pin
    )
    # Read the pipes on threads (a full pipe would block the child), and reap the child with
    # wait4 for its own rusage (RUSAGE_CHILDREN would mix every child's peak RSS).
    chunks = {}

    def drain(name, pipe):
        chunks[name] = pipe.read()

    readers = [
        threading.Thread(target=drain, args=("out", proc.stdout)),
        threading.Thread(target=drain, args=("err", proc.stderr)),
    ]
    for r in readers:
        r.start()
    killer = threading.Timer(timeout, proc.kill)  # the child is not reaped before wait4
    killer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: never signalled again
    finally:
        killer.cancel()
        killer.join()
    for r in readers:
        r.join()
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
        raise RuntimeError(f"killed after {timeout} s without a result")
    return proc.returncode, chunks.get("out", b""), chunks.get("err", b""), usage


def measure(variant, size, env, expected_rows, cpus=None):
    t0 = time.perf_counter()
    code, out, err, usage = communicate_and_wait4(
        variant.argv + [str(size)], env, RUN_TIMEOUT, cpus
    )
    wall = time.perf_counter() - t0
    if code != 0:
        raise RuntimeError(f"exit code {code}: {err.decode(errors='replace').strip()[-3000:]}")
    sample = None
    for line in out.decode(errors="replace").splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict) and "driver" in parsed:
            sample = parsed
    if sample is None:
        raise RuntimeError(f"no result line; stdout: {out.decode(errors='replace')[-2000:]}")
    if expected_rows is not None and sample["rows"] != expected_rows:
        raise RuntimeError(f"read {sample['rows']} rows, expected {expected_rows}")
    if sample["rows"] == 0:
        raise RuntimeError("read no rows")
    sample["process_wall_s"] = wall
    sample["process_cpu_s"] = usage.ru_utime + usage.ru_stime
    sample["peak_rss_mb"] = usage.ru_maxrss / 1024.0  # Linux: KiB
    return sample


def expected_rows(key, size):
    """The rows a run must read: one per `SELECT 1`, N of `mock.rows(N)`; any for metadata."""
    return None if key == "columns" else size


def fmt_time(s):
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms" if s < 0.1 else f"{s * 1e3:.0f} ms"
    return f"{s:.2f} s"


def ratio(value, reference):
    return f"{value / reference:.2f}" if reference else "-"


def spread(values, per=1):
    return f"{fmt_time(min(values) / per)}-{fmt_time(max(values) / per)}"


def table(wls, runs, quick, versions, loads):
    lines = []
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu_model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for l in f:
                if l.startswith("model name"):
                    cpu_model = l.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    lines.append(
        f"Measured {now} on {os.cpu_count()} vCPU ({cpu_model}, {platform.system()}), client and "
        f"mock warehouse on the same cores"
        + (
            " ((a) and (e) pinned as their titles say, the others unpinned)"
            if any(w[5] for w in wls)
            else ""
        )
        + f"; {versions}. Medians of {runs} runs after a warm-up "
        f"round, drivers alternating, each run its own process"
        + (" (--quick: reduced sizes, not for quoting)" if quick else "")
        + f". Load average (1 min) {loads[0]:.1f} at the start, {loads[1]:.1f} at the end"
        + ". Wall and CPU: the workload alone (connect and close excluded; CPU is the whole "
        "client process, every thread); peak RSS: the whole client process. Ratios: the other "
        "driver's median over this driver's (for (b), over the streamed read)."
    )
    lines.append("")
    for key, title, size, unit, variants, _ in wls:
        lines.append(f"**{title}**")
        lines.append("")
        per_hdr = f" per {unit}" if unit else ""
        lines.append(
            f"| driver | API | wall{per_hdr} (median) | min-max | x ours | CPU{per_hdr} | x ours | "
            "first batch | peak RSS |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|")
        # This driver's first variant is the reference; without it, no ratios.
        ref = variants[0] if variants[0].samples else None
        ref_wall = statistics.median(s["wall_s"] for s in ref.samples) if ref else None
        ref_cpu = statistics.median(s["cpu_s"] for s in ref.samples) if ref else None
        notes = []
        for v in variants:
            api = v.api + (f" [{len(notes) + 1}]" if v.note else "")
            if v.note:
                notes.append(v.note)
            if not v.samples:
                lines.append(f"| {v.label} | {api} | failed: see below | | | | | | |")
                continue
            per = v.samples[0]["iterations"] if unit else 1
            wall = [s["wall_s"] for s in v.samples]
            cpu = [s["cpu_s"] for s in v.samples]
            rss = [s["peak_rss_mb"] for s in v.samples]
            fb = [s["first_batch_s"] for s in v.samples if s.get("first_batch_s") is not None]
            mw, mc = statistics.median(wall), statistics.median(cpu)
            lines.append(
                f"| {v.label} | {api} | {fmt_time(mw / per)} | {spread(wall, per)} | "
                f"{ratio(mw, ref_wall)} | {fmt_time(mc / per)} | {ratio(mc, ref_cpu)} | "
                f"{fmt_time(statistics.median(fb)) if fb else '-'} | "
                f"{statistics.median(rss):.0f} MB |"
            )
        for i, n in enumerate(notes):
            lines.append("")
            lines.append(f"[{i + 1}] {n}")
        for v in variants:
            if v.error:
                lines.append("")
                lines.append(f"{v.label}, {v.api}: FAILED: `{v.error}`")
        lines.append("")
    return "\n".join(lines)


def versions(root):
    parts = []
    try:
        out = subprocess.run(
            [
                os.path.join(HERE, ".venv", "bin", "python"),
                "-c",
                "import importlib.metadata as m, sys; print(m.version('databricks-sql-connector'), "
                "m.version('pyarrow'), sys.version.split()[0])",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        parts.append(f"databricks-sql-connector {out[0]} with pyarrow {out[1]} (Python {out[2]})")
    except (OSError, subprocess.CalledProcessError, IndexError):
        parts.append("Python connector version unknown")
    try:
        with open(os.path.join(HERE, "node_modules", "@databricks", "sql", "package.json")) as f:
            v = json.load(f)["version"]
        nv = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
        parts.append(f"@databricks/sql {v} (Node.js {nv})")
    except (OSError, ValueError, KeyError):
        parts.append("Node.js driver version unknown")
    try:
        with open(os.path.join(root, "Cargo.toml")) as f:
            v = re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)
        rv = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.split()
        parts.append(f"databricks-sql {v} (release build, rustc {rv[1] if len(rv) > 1 else '?'})")
    except (OSError, AttributeError):
        pass
    return ", ".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", required=True, help="the repository root")
    ap.add_argument("--runs", type=int, default=5, help="measured runs per driver (default 5)")
    ap.add_argument("--quick", action="store_true", help="reduced sizes, one measured run")
    ap.add_argument("--only", default="", help="comma-separated workloads: select1,cloudfetch,...")
    args = ap.parse_args()
    runs = 1 if args.quick and args.runs == 5 else args.runs
    if runs < 1:
        sys.exit("--runs must be at least 1")

    wls = workloads(args.root, args.quick)
    if args.only:
        keep = set(args.only.split(","))
        unknown = keep - {w[0] for w in wls}
        if unknown:
            sys.exit(f"unknown workloads: {', '.join(sorted(unknown))}")
        wls = [w for w in wls if w[0] in keep]

    mock, conn = start_mock(args.root)
    env = dict(os.environ)
    env.update(conn)
    started = time.monotonic()
    load_start = os.getloadavg()[0]
    try:
        for key, title, size, _, variants, placement in wls:
            print(f"== {title}", flush=True)
            mock_cpus, client_cpus = cpus_for(placement)
            pin_mock(mock, mock_cpus)
            for rnd in range(runs + 1):
                for v in variants:
                    if v.error:
                        continue
                    try:
                        s = measure(v, size, env, expected_rows(key, size), client_cpus)
                    except RuntimeError as e:
                        v.error = str(e)
                        print(f"   {v.label}, {v.api}: FAILED: {e}", flush=True)
                        continue
                    tag = "warm-up" if rnd == 0 else f"run {rnd}"
                    print(
                        f"   {tag:8} {v.label:22} {v.workload:17} wall {fmt_time(s['wall_s']):>9}  "
                        f"cpu {fmt_time(s['cpu_s']):>9}  rss {s['peak_rss_mb']:.0f} MB",
                        flush=True,
                    )
                    if rnd > 0:
                        v.samples.append(s)
    finally:
        mock.send_signal(signal.SIGINT)
        try:
            mock.wait(timeout=10)
        except subprocess.TimeoutExpired:
            mock.kill()
            mock.wait()

    md = table(wls, runs, args.quick, versions(args.root), (load_start, os.getloadavg()[0]))
    out_dir = os.path.join(HERE, "out")
    os.makedirs(out_dir, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    with open(os.path.join(out_dir, f"results-{stamp}.md"), "w") as f:
        f.write(md + "\n")
    with open(os.path.join(out_dir, f"samples-{stamp}.json"), "w") as f:
        json.dump(
            {
                w[0] + (f"/{w[5]}" if w[5] else ""): {
                    f"{v.label} / {v.workload}": {"samples": v.samples, "error": v.error}
                    for v in w[4]
                }
                for w in wls
            },
            f,
            indent=1,
        )
    print()
    print(md)
    print(f"Written to {os.path.relpath(out_dir, args.root)}/results-{stamp}.md "
          f"(samples-{stamp}.json); {time.monotonic() - started:.0f} s")
    if any(v.error for w in wls for v in w[4]):
        sys.exit(1)


if __name__ == "__main__":
    main()
