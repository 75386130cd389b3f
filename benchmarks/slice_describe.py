"""A decision from a run's inputs: described from its pipeline's warm state, against the ways before.

On a simulated corpus (default 40 pipelines x 120 days, cached in benchmarks/.cache), a
policy is learned and, for each of ``--lanes`` lanes, the upcoming training is described
from the input artifacts of the lane's newest training (read from the MLMD store by id, as
the service does) in three ways, each ``--repeats`` times:

- *whole*: the feature SQL over the whole warehouse (the way before slices);
- *slice*: the feature SQL on the pipeline's slice (the way before this round: forty-odd
  statements whatever the slice's size), its graphlets and lanes prepared once;
- *online*: as the service does now (``pipeline_slice.describe_with_inputs``): the lane's
  state kept warm (``online.prepare_lanes``, once per slice and policy, each lane rehearsed),
  the run's records read over the slice's, its upstream found by lookups by id and only its
  own property statement run.

Then *next*: a gate's next run, recorded in a copy of the store after the warehouse was read
(data ingestion, statistics, schema, validation through the ml_metadata API: records the
slice has never seen), described online on the same slice, ``--repeats`` times, and checked
against the feature SQL on the slice with the run's records loaded.

Prints p50 / p99 / max of each (milliseconds) with the ratios, the times of cutting a slice,
of preparing its lanes and of reading the inputs from the store, and checks that the three
describe every lane alike (every feature, score and guard). The last line is JSON.

    python benchmarks/slice_describe.py [--pipelines 40] [--days 120] [--lanes 20] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from common import CACHE, ROOT, cached, simulated_warehouse


def _ms(values: list[float]) -> dict:
    a = np.asarray(values) * 1000
    return {"p50": round(float(np.percentile(a, 50)), 1), "p99": round(float(np.percentile(a, 99)), 1),
            "max": round(float(a.max()), 1), "n": len(a)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipelines", type=int, default=40)
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--lanes", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    import duckdb

    from optimizer.pruning import live
    from optimizer.pruning.pipeline_slice import cut_slice, describe_with_inputs, describe_with_sql
    from optimizer.pruning.training_set import training_frame
    from provenance.connections import parse_store
    from provenance.readers.inputs import read_inputs

    out = CACHE / f"slice-describe-{args.pipelines}x{args.days}-s{args.seed}"
    cached(out, lambda folder: simulated_warehouse(folder, pipelines=args.pipelines, days=args.days,
                                                   seed=args.seed))
    stores = {parse_store(str(p)).source_id: parse_store(str(p)) for p in sorted((out / "corpus").glob("*.sqlite"))}
    con = duckdb.connect(str(out / "w.duckdb"), read_only=True)
    con.execute("SET threads = 1")     # as a slice runs: the comparison is of the work, not of the cores
    frame, cols, keys, _ = training_frame(con)
    learned = live.learn(frame, cols, keys)
    ups = live.lanes_unscored(con)
    step = max(1, len(ups) // args.lanes)
    chosen = sorted(ups.items())[::step][:args.lanes]
    print(f"{len(frame):,} trainings, {len(ups)} lanes; describing {len(chosen)} of them {args.repeats} times each",
          flush=True)

    import shutil
    import sys
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(ROOT / "tests"))
    from service.runs import append_run

    copies = Path(tempfile.mkdtemp(prefix="frugal-slice-describe-"))
    times: dict[str, list[float]] = {"whole": [], "slice": [], "online": [], "next": [], "cut": [], "prepare": [],
                                     "read": []}
    differ = []
    online_lanes = 0
    for lane, up in chosen:
        trainer = con.execute(
            "SELECT trainer_execution_id FROM graphlets WHERE source_id = ? AND pipeline = ? "
            "ORDER BY started_at DESC, graphlet_id DESC LIMIT 1", [up.source_id, up.pipeline]).fetchall()[0][0]
        inputs = [r[0] for r in con.execute(
            "SELECT DISTINCT artifact_id FROM events WHERE source_id = ? AND execution_id = ? AND type = 'INPUT' "
            "ORDER BY 1", [up.source_id, trainer]).fetchall()]
        t0 = time.perf_counter()
        batch = read_inputs(stores[up.source_id], inputs)
        times["read"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        sl = cut_slice(con, up.source_id, up.pipeline)
        times["cut"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        sl.prepare(learned)
        times["prepare"].append(time.perf_counter() - t0)
        found = {}
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            found["whole"] = live.describe_upcoming(con, learned, pipeline=up.pipeline, lanes=[lane], inputs=inputs,
                                                    sources=[up.source_id])[lane]
            times["whole"].append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            found["slice"] = describe_with_sql(sl, learned, lane, batch, inputs)
            times["slice"].append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            found["online"] = describe_with_inputs(sl, learned, lane, batch, inputs)
            times["online"].append(time.perf_counter() - t0)
        online_lanes += lane in sl.lanes
        if not repr(found["whole"]) == repr(found["slice"]) == repr(found["online"]):
            differ.append(lane)
        # a gate's next run: recorded in a copy of the store after the warehouse read it
        copy = copies / stores[up.source_id].path.name
        if not copy.exists():
            shutil.copyfile(stores[up.source_id].path, copy)
        newest = con.execute("SELECT max(create_time) FROM executions WHERE source_id = ?",
                             [up.source_id]).fetchall()[0][0]
        ids = append_run(copy, up.pipeline, started_at=newest.timestamp() + 3600, train=False)
        run = [ids["Examples"], ids["ExampleStatistics"], ids["Schema"], ids["ExampleAnomalies"]]
        next_batch = read_inputs(parse_store(str(copy)), run)
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            found["next"] = describe_with_inputs(sl, learned, lane, next_batch, run)
            times["next"].append(time.perf_counter() - t0)
        if repr(found["next"]) != repr(describe_with_sql(sl, learned, lane, next_batch, run)):
            differ.append(f"{lane} (next run)")
        sl.close()
    shutil.rmtree(copies, ignore_errors=True)

    stats = {k: _ms(v) for k, v in times.items()}
    print(f"\n{'way':<10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  {'p50 / online':>13}")
    for way in ("whole", "slice", "online", "next"):
        s = stats[way]
        print(f"{way:<10} {s['p50']:>8.1f} {s['p99']:>8.1f} {s['max']:>8.1f}  "
              f"{s['p50'] / stats['online']['p50']:>12.1f}x")
    print(f"cut a slice: p50 {stats['cut']['p50']} ms, max {stats['cut']['max']} ms; prepare its lanes: p50 "
          f"{stats['prepare']['p50']} ms, max {stats['prepare']['max']} ms; read the inputs from the store: "
          f"p50 {stats['read']['p50']} ms, max {stats['read']['max']} ms")
    print(f"described online: {online_lanes} of {len(chosen)} lanes (the others by the feature SQL)")
    print(f"the three alike on every lane, the next runs as the feature SQL: {not differ}"
          + (f" (differ: {differ})" if differ else ""))
    print(json.dumps({"trainings": len(frame), "lanes": len(chosen), "online_lanes": online_lanes, **stats,
                      "alike": not differ}))


if __name__ == "__main__":
    main()
