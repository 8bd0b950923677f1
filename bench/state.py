"""Benchmark: scheduled hunts (``hunt --state``) against plain hunts of the same files, in one run.

Usage::

    python bench/state.py                          # 200 k records over 5 days
    python bench/state.py --records 1000000 --days 7

It generates (once, cached under ``bench/.cache/``) a synthetic organisation of ``--days``
days, then runs each step as its own ``imdshunt hunt`` subprocess (CloudTrail and ALB logs,
inventory, every detection, ``--format jsonl``), timing its wall clock and sampling the resident
memory of its whole process tree (see ``bench/run.py``):

* ``plain_first``   a plain hunt of days 1..N-1;
* ``state_first``   the first ``--state`` run over the same files (empty state);
* ``nothing_new``   the same state again, nothing new;
* ``listing``       listing the same files alone (Python start, import, walk), for comparison;
* ``plain_day``     a plain hunt of day N alone;
* ``state_day``     the state run that adds day N;
* ``plain_all``     a plain hunt of days 1..N.

Then a second state with ``--retention 1`` is fed the days one by one, and its size is recorded
after each day (flat over time with retention). Results go to ``bench/results-state-<N>.json``.

``--baseline SRC`` (another checkout's ``src`` folder, e.g. ``../main/src``) runs the state
steps (``state_first``, ``state_day``) with that code too, interleaved with this checkout's in
the same run, and reports both side by side (before/after a change, on one machine's load).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import CACHE, machine, measure  # noqa: E402


def generate(records: int, days: int, seed: int) -> Path:
    out = CACHE / f"org-state-{records}-d{days}-s{seed}"
    if (out / ".complete").exists():
        return out
    from imdshunt.synth import generate_org

    if out.exists():
        shutil.rmtree(out)
    print(f"generating {records:,} records over {days} days into {out} ...", flush=True)
    generate_org(out, seed=seed, records=records, days=days, workers=os.cpu_count())
    (out / ".complete").write_text("ok\n")
    return out


def _day(rel: Path) -> str | None:
    parts = rel.parts
    for i in range(len(parts) - 3):
        if parts[i].isdigit() and len(parts[i]) == 4 and parts[i + 1].isdigit():
            return "/".join(parts[i : i + 3])
    return None


def days_of(org: Path) -> list[str]:
    return sorted(
        {d for p in (org / "AWSLogs").rglob("*") if p.is_file() and (d := _day(p.relative_to(org)))}
    )


def link(org: Path, tree: Path, days: set[str]) -> int:
    """Hard-link the organisation's files of ``days`` under ``tree``; returns their gzip bytes."""
    size = 0
    for p in (org / "AWSLogs").rglob("*"):
        if not p.is_file():
            continue
        rel = p.relative_to(org)
        d = _day(rel)
        if d is not None and d not in days:
            continue
        target = tree / rel
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(p, target)
        size += p.stat().st_size
    return size


def state_bytes(state: Path) -> int:
    return sum(p.stat().st_size for p in state.glob("state.duckdb*"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--days", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--baseline", help="another checkout's src folder, run side by side")
    ap.add_argument("--skip-retention", action="store_true", help="no retention series")
    args = ap.parse_args()

    org = generate(args.records, args.days, args.seed)
    days = days_of(org)
    work = Path(tempfile.mkdtemp(prefix="imdshunt-bench-state-"))
    env = dict(os.environ, PYTHONPATH=str(HERE.parent / "src"))
    py = [sys.executable, "-m", "imdshunt", "hunt"]
    common = [
        "--ip-ranges", str(org / "ip-ranges.json"), "--inventory", str(org / "inventory"),
        "--workers", str(args.workers), "--format", "jsonl", "-o", os.devnull, "-q",
    ]  # fmt: skip
    first_days, last_day = set(days[:-1]), days[-1]
    # the last calendar folder may hold only a few late deliveries: "a day" is the last full one
    if len(days) > 2 and sum(1 for _ in (org / "AWSLogs").rglob(f"*{last_day}/*")) < 10:
        first_days, last_day = set(days[:-2]), days[-2]
        extra = {days[-1]}
    else:
        extra = set()
    running, alone, everything = work / "running", work / "alone", work / "all"
    gz_first = link(org, running, first_days)
    gz_day = link(org, alone, {last_day})
    gz_all = link(org, everything, first_days | {last_day} | extra)
    state = work / "state"
    base_env = dict(env, PYTHONPATH=str(Path(args.baseline).resolve())) if args.baseline else None
    base_state = work / "state-baseline"
    res: dict = {"machine": machine(), "load_before": os.getloadavg(), "days": days}
    print(f"load average before: {os.getloadavg()}", flush=True)
    res["plain_first"] = measure("plain_first", [*py, str(running), *common], env)
    if base_env:
        res["baseline_state_first"] = measure(
            "baseline state_first",
            [*py, str(running), *common, "--state", str(base_state)],
            base_env,
        )
        res["baseline_state_bytes_first"] = state_bytes(base_state)
    res["state_first"] = measure(
        "state_first", [*py, str(running), *common, "--state", str(state)], env
    )
    res["state_bytes_first"] = state_bytes(state)
    res["nothing_new"] = measure(
        "nothing_new", [*py, str(running), *common, "--state", str(state)], env
    )
    listing = (
        "import sys; from imdshunt.sources.discover import RunStats; "
        "from imdshunt.sources.inputs import list_inputs; "
        "print(len(list_inputs([sys.argv[1]], RunStats()).files))"
    )
    res["listing"] = measure("listing", [sys.executable, "-c", listing, str(running)], env)
    res["plain_day"] = measure("plain_day", [*py, str(alone), *common], env)
    link(org, running, {last_day} | extra)
    if base_env:
        res["baseline_state_day"] = measure(
            "baseline state_day",
            [*py, str(running), *common, "--state", str(base_state)],
            base_env,
        )
        res["baseline_state_bytes_after_day"] = state_bytes(base_state)
    res["state_day"] = measure(
        "state_day", [*py, str(running), *common, "--state", str(state)], env
    )
    res["state_bytes_after_day"] = state_bytes(state)
    res["plain_all"] = measure("plain_all", [*py, str(everything), *common], env)

    # retention: the days one by one into a state that keeps one day
    kept, growing = work / "retained", work / "growing"
    sizes = []
    for d in [] if args.skip_retention else days:
        link(org, growing, {d})
        argv = [*py, str(growing), *common, "--state", str(kept), "--retention", "1"]
        measure(f"retention {d}", argv, env)
        sizes.append(state_bytes(kept))
    res["retention_1_day_sizes"] = sizes
    res["load_after"] = os.getloadavg()
    res["gzip_bytes"] = {"first": gz_first, "day": gz_day, "all": gz_all}

    def r(a: str, b: str) -> float:
        return round(res[a]["seconds"] / res[b]["seconds"], 2)

    res["summary"] = {
        "first_state_over_plain": r("state_first", "plain_first"),
        "add_day_over_plain_day": r("state_day", "plain_day"),
        "nothing_new_seconds": round(res["nothing_new"]["seconds"], 2),
        "listing_seconds": round(res["listing"]["seconds"], 2),
        "state_over_gzip": round(res["state_bytes_after_day"] / gz_all, 3),
        "peak_rss_mib": {
            k: round(res[k]["peak_rss_tree_mib"])
            for k in ("plain_first", "state_first", "plain_day", "state_day", "plain_all")
        },
        "retention_sizes_mib": [round(s / 2**20, 1) for s in sizes],
    }
    if base_env:
        res["summary"]["baseline"] = {
            "first_state_over_plain": r("baseline_state_first", "plain_first"),
            "add_day_over_plain_day": r("baseline_state_day", "plain_day"),
            "state_over_gzip": round(res["baseline_state_bytes_after_day"] / gz_all, 3),
            "peak_rss_mib": {
                k: round(res[f"baseline_{k}"]["peak_rss_tree_mib"])
                for k in ("state_first", "state_day")
            },
        }
    print(json.dumps(res["summary"], indent=2))
    out = HERE / f"results-state-{args.records}.json"
    out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
