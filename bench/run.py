"""Benchmark: imdshunt's full hunt against the obvious alternatives, side by side, in one run.

Usage (``make bench`` runs the first)::

    python bench/run.py                      # 1 M records
    python bench/run.py --records 10000000   # 10 M records

It generates (once, cached under ``bench/.cache/``) a synthetic organisation with the project's
generator (:func:`imdshunt.synth.generate_org`), then runs each approach in its own subprocess,
timing its wall clock and sampling the resident memory of its whole process tree:

* ``hunt``          the ``imdshunt hunt`` CLI, all CloudTrail detections, ``--format jsonl``
                    (DuckDB parses the delivered files: sources/cloudtrail_native.py);
* ``hunt_exact``    the same hunt with ``IMDSHUNT_CLOUDTRAIL_PARSER=exact``: every file through
                    the exact msgspec decoder, as before issue 23;
* ``duckdb``        DuckDB ``read_json(format='auto')`` over the same files + the article's
                    instance-id query (AssumedRole ARNs whose session is ``i-…``, by ARN and IP);
* ``zcat``          the decompression floor: ISA-L inflate of every file, 2 processes;
* ``narrow``        the decompression-plus-narrow-decode floor: ISA-L + msgspec typed decode of
                    only the fields imdshunt needs, 2 processes, no Arrow;
* ``ingest``        ``imdshunt ingest --store`` (compile once) into a fresh store;
* ``hunt_store``    ``imdshunt hunt --store`` over that store (hunt many).

It prints records per second, the ratios the targets are stated in, and peak RSS; it writes all
of it to ``bench/results-<N>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".cache"

#: The article's query: instance-profile sessions (session name i-…) by ARN and source address.
ARTICLE_SQL = """
WITH r AS (SELECT unnest(Records) AS r FROM read_json({files}, format='auto',
                                                      maximum_object_size=268435456))
SELECT r.userIdentity.arn AS arn, r.sourceIPAddress AS source_ip, count(*) AS events
FROM r
WHERE r.userIdentity.type = 'AssumedRole'
  AND regexp_matches(r.userIdentity.arn, ':assumed-role/[^/]+/i-[0-9a-f]+$')
GROUP BY ALL
ORDER BY events DESC
"""


# -- data --------------------------------------------------------------------------------------
def generate(records: int, seed: int) -> Path:
    """The cached synthetic organisation of ``records`` CloudTrail records."""
    out = CACHE / f"org-{records}-s{seed}"
    if (out / ".complete").exists():
        return out
    try:
        from imdshunt.synth import generate_org
    except ImportError:  # pragma: no cover - until the generator lands on this branch
        sys.exit("bench needs imdshunt.synth.generate_org (the project's generator)")
    if out.exists():
        shutil.rmtree(out)
    # About 580 records per 5-minute file: CloudTrail's delivery cadence for a busy region.
    days = max(1, round(records / 1_000_000))
    t = time.perf_counter()
    print(f"generating {records:,} records over {days} day(s) into {out} ...", flush=True)
    generate_org(out, seed=seed, records=records, days=days, workers=os.cpu_count())
    (out / ".complete").write_text(f"{time.perf_counter() - t:.1f}s\n")
    return out


def cloudtrail_files(org: Path) -> list[str]:
    """The CloudTrail log files (digests excluded) of the organisation, in a stable order."""
    return sorted(str(p) for p in (org / "AWSLogs").rglob("*.json.gz") if "/CloudTrail/" in str(p))


def cloudtrail_root(org: Path) -> Path:
    truth = json.loads((org / "ground_truth.json").read_text())
    return org / truth["paths"]["cloudtrail"]


# -- floors (run in a subprocess via --floor) -------------------------------------------------
def _inflate(paths: list[str]) -> tuple[int, int]:
    from isal import igzip

    n = 0
    for p in paths:
        with open(p, "rb") as fh:
            n += len(igzip.decompress(fh.read()))
    return n, 0


def _narrow(paths: list[str]) -> tuple[int, int]:
    from isal import igzip

    from imdshunt.sources.cloudtrail import _envelope_decoder

    n = records = 0
    for p in paths:
        with open(p, "rb") as fh:
            data = igzip.decompress(fh.read())
        n += len(data)
        env = _envelope_decoder.decode(data)
        records += len(env.Records or ())
    return n, records


def run_floor(kind: str, filelist: str, workers: int) -> None:
    import concurrent.futures as cf
    import multiprocessing as mp

    files = Path(filelist).read_text().split("\n")
    files = [f for f in files if f]
    chunks = [files[i : i + 16] for i in range(0, len(files), 16)]
    fn = _inflate if kind == "zcat" else _narrow
    nbytes = records = 0
    ctx = mp.get_context("forkserver")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        for b, r in pool.map(fn, chunks):
            nbytes += b
            records += r
    print(json.dumps({"bytes": nbytes, "records": records}))


def run_duckdb(filelist: str, threads: int) -> None:
    import duckdb

    files = [f for f in Path(filelist).read_text().split("\n") if f]
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    rows = con.execute(ARTICLE_SQL.format(files=repr(files))).fetchall()
    print(json.dumps({"groups": len(rows)}))


def run_store_hunt(store: str, ip_ranges: str) -> None:
    """Library hunt over a compiled store; prints the in-process hunt time too."""
    from imdshunt import api

    t = time.perf_counter()
    res = api.hunt([], store=store, ip_ranges=ip_ranges, fetch_ip_ranges=False)
    print(json.dumps({"findings": len(res.findings), "seconds": time.perf_counter() - t}))


def run_raw_hunt(root: str, ip_ranges: str, workers: int) -> None:
    """Library hunt over raw JSON; prints the in-process hunt time too."""
    from imdshunt import api

    t = time.perf_counter()
    res = api.hunt([root], ip_ranges=ip_ranges, fetch_ip_ranges=False, workers=workers)
    print(
        json.dumps(
            {
                "findings": len(res.findings),
                "records": res.stats.records_read,
                "seconds": time.perf_counter() - t,
            }
        )
    )


# -- measuring ---------------------------------------------------------------------------------
def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ppid, pages = int(fields[1]), int(fields[21])
        children.setdefault(ppid, []).append(int(d))
        rss[int(d)] = pages * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack.extend(children.get(p, ()))
    return total


def measure(name: str, argv: list[str], env: dict[str, str] | None = None) -> dict:
    """Run ``argv``; wall seconds, peak RSS of the process tree, max RSS of one process."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.05)
    seconds = time.perf_counter() - t
    out, err = proc.communicate()
    # ru_maxrss (KiB on Linux) of the biggest single process among the waited-for children.
    import resource

    single = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{name} failed ({proc.returncode}): {err.decode()[-2000:]}")
    extra: dict = {}
    for line in reversed(out.decode().splitlines()):
        if line.startswith("{"):
            extra = json.loads(line)
            break
    print(f"  {name:12} {seconds:8.2f} s   peak RSS {peak / 2**20:7.0f} MiB", flush=True)
    return {
        "seconds": seconds,
        "peak_rss_tree_mib": peak / 2**20,
        "max_rss_single_process_so_far_mib": single / 2**20,
        **extra,
    }


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        mem_gib = int(mem) / 2**20
    except OSError:
        mem_gib = 0.0
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": round(mem_gib, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workers", type=int, default=2, help="processes for hunt and floors")
    ap.add_argument(
        "--only", default="", help="comma-separated subset: hunt,duckdb,zcat,narrow,store"
    )
    ap.add_argument("--skip", default="", help="comma-separated: exact (the old-path hunt)")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run every measurement N times, interleaved, and keep each one's fastest run "
        "(the machine may be shared: the fastest run is the least disturbed)",
    )
    ap.add_argument(
        "--no-lib",
        action="store_true",
        help="skip the in-process (library) raw hunt, which repeats the CLI hunt's work",
    )
    ap.add_argument("--floor", choices=["zcat", "narrow"], help=argparse.SUPPRESS)
    ap.add_argument("--duckdb", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--store-hunt", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--raw-hunt", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--filelist", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.floor:
        return run_floor(args.floor, args.filelist, args.workers)
    if args.duckdb:
        return run_duckdb(args.filelist, args.workers)
    if args.store_hunt:
        return run_store_hunt(*args.store_hunt)
    if args.raw_hunt:
        return run_raw_hunt(args.raw_hunt[0], args.raw_hunt[1], args.workers)

    only = set(filter(None, args.only.split(","))) or {"hunt", "duckdb", "zcat", "narrow", "store"}
    skip = set(filter(None, args.skip.split(",")))
    org = generate(args.records, args.seed)
    files = cloudtrail_files(org)
    CACHE.mkdir(exist_ok=True)
    filelist = CACHE / f"files-{args.records}.txt"
    filelist.write_text("\n".join(files) + "\n")
    gz_bytes = sum(os.path.getsize(f) for f in files)
    ip_ranges = str(org / "ip-ranges.json")
    root = str(cloudtrail_root(org))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    exact_env = dict(env, IMDSHUNT_CLOUDTRAIL_PARSER="exact")
    py = sys.executable
    me = str(Path(__file__).resolve())
    w = str(args.workers)
    print(f"{len(files):,} CloudTrail files, {gz_bytes / 2**20:,.0f} MiB gzip; {machine()}")

    plans: list[tuple[str, list[str]]] = []
    if "narrow" in only:
        plans.append(
            ("narrow", [py, me, "--floor", "narrow", "--filelist", str(filelist), "--workers", w])
        )
    if "zcat" in only:
        plans.append(
            ("zcat", [py, me, "--floor", "zcat", "--filelist", str(filelist), "--workers", w])
        )
    if "hunt" in only:
        plans.append(
            (
                "hunt",
                [
                    py,
                    "-m",
                    "imdshunt",
                    "hunt",
                    root,
                    "--ip-ranges",
                    ip_ranges,
                    "--format",
                    "jsonl",
                    "-o",
                    os.devnull,
                    "-q",
                    "--workers",
                    w,
                ],
            )
        )
        if "exact" not in skip:
            plans.append(("hunt_exact", plans[-1][1]))
        if not args.no_lib:
            plans.append(("hunt_library", [py, me, "--raw-hunt", root, ip_ranges, "--workers", w]))
    if "duckdb" in only:
        plans.append(("duckdb", [py, me, "--duckdb", "--filelist", str(filelist), "--workers", w]))
    store = Path(tempfile.mkdtemp(prefix="store-", dir=CACHE))
    if "store" in only:
        plans += [
            (
                "ingest",
                [py, "-m", "imdshunt", "ingest", root, "--store", str(store), "-q", "--workers", w],
            ),
            (
                "hunt_store",
                [
                    py,
                    "-m",
                    "imdshunt",
                    "hunt",
                    "--store",
                    str(store),
                    "--ip-ranges",
                    ip_ranges,
                    "--format",
                    "jsonl",
                    "-o",
                    os.devnull,
                    "-q",
                ],
            ),
            ("hunt_store_library", [py, me, "--store-hunt", str(store), ip_ranges]),
        ]
    results: dict[str, dict] = {}
    try:
        for round_no in range(args.repeat):
            print(f"round {round_no + 1} of {args.repeat}", flush=True)
            for name, argv in plans:
                if name == "ingest":
                    shutil.rmtree(store)  # a fresh store each round: ingest does all files
                r = measure(name, argv, exact_env if name == "hunt_exact" else env)
                prev = results.get(name)
                runs = (prev or {}).get("runs_seconds", []) + [round(r["seconds"], 3)]
                if prev is None or r["seconds"] < prev["seconds"]:
                    results[name] = r
                results[name]["runs_seconds"] = runs
                _save(args.records, results, files, gz_bytes)
        if "store" in only:
            results["store_bytes"] = {
                "bytes": sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
            }
    finally:
        shutil.rmtree(store, ignore_errors=True)

    print(
        f"\n{_save(args.records, results, files, gz_bytes):,} records; "
        f"results in {HERE / f'results-{args.records}.json'}"
    )
    for k, v in _summarise(results, _records(args.records, results)).items():
        print(f"  {k:48} {v}")


def _records(requested: int, results: dict) -> int:
    return (
        results.get("narrow", {}).get("records")
        or results.get("hunt_library", {}).get("records")
        or requested
    )


def _save(requested: int, results: dict, files: list[str], gz_bytes: int) -> int:
    """Write ``bench/results-<N>.json`` (after every measurement: a long run keeps its part)."""
    records = _records(requested, results)
    doc = {
        "records": records,
        "files": len(files),
        "gzip_bytes": gz_bytes,
        "machine": machine(),
        "results": results,
        "summary": _summarise(results, records),
    }
    (HERE / f"results-{requested}.json").write_text(json.dumps(doc, indent=2) + "\n")
    return records


def _summarise(results: dict, records: int) -> dict:
    s: dict = {}
    for k, r in results.items():
        if "seconds" in r and "peak_rss_tree_mib" in r:
            s[f"{k} records/s"] = f"{records / r['seconds']:,.0f}"
            s[f"{k} peak RSS MiB"] = round(r["peak_rss_tree_mib"])

    def ratio(a: str, b: str, key: str = "seconds") -> float | None:
        if a in results and b in results:
            return round(results[a][key] / results[b][key], 2)
        return None

    s["duckdb / hunt (target >= 4)"] = ratio("duckdb", "hunt")
    s["hunt / narrow floor (target <= 1.5)"] = ratio("hunt", "narrow")
    s["hunt / zcat floor"] = ratio("hunt", "zcat")
    s["old hunt (exact decoder) / hunt"] = ratio("hunt_exact", "hunt")
    s["old hunt (exact decoder) / narrow floor"] = ratio("hunt_exact", "narrow")
    s["duckdb / old hunt (exact decoder)"] = ratio("duckdb", "hunt_exact")
    s["hunt --store / narrow floor (target <= 0.5)"] = ratio("hunt_store", "narrow")
    s["hunt / hunt --store, CLI wall (target >= 20)"] = ratio("hunt", "hunt_store")
    if "hunt_library" in results and "hunt_store_library" in results:
        s["hunt / hunt --store, in-process (target >= 20)"] = round(
            results["hunt_library"]["seconds"] / results["hunt_store_library"]["seconds"], 1
        )
    return s


if __name__ == "__main__":
    main()
