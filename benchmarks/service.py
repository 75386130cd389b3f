"""The service's decisions under load, against the cold batch path of today.

A simulated warehouse of at least 50,000 trainings (cached in benchmarks/.cache) is served
by `frugal serve` as a real subprocess, together with a small second store that grows during
the run (a real run appended through the ml_metadata API every second by a second process,
ingested in the background every few seconds). A real HTTP client sends decisions at a fixed
rate (open loop, default 100 requests/s for 60 s) and records each latency. Then decisions that carry this
run's inputs (the service reads the store first) are timed one by one. Beside them: the cold
`frugal prune decide --warehouse` of the batch path, as a user runs it (a new process that
learns the policy), on a copy of the same warehouse.

Prints p50/p99 latency, errors, throughput, the cold path's time and the ratio; the last line
is JSON. Bars: p99 <= 50 ms with zero errors, >= 100x faster than the cold path, decisions
with inputs p99 <= 1 s.

    python benchmarks/service.py [--pipelines 450] [--days 100] [--rate 100] [--seconds 60]

With ``--scale 0.25,0.5,1`` it instead serves corpora of these fractions of ``--pipelines`` (same
days and seed; each simulated once, cached), each from a cold start (no warehouse, no policy),
and prints per size: seconds from launch to the first decision answered (the warm-up's
fallback) and to the first policy, the peak RSS of the service and of its children (the refit),
sampled from /proc every 0.25 s, the first refresh's seconds (ingest, analysis, refit, describe)
and those of a refit on demand and of an idle refresh, decision latency p50/p99 (sequential,
over real HTTP, then open loop at ``--rate`` for ``--seconds``), decisions from a run's inputs
(the newest training's input artifacts of ``--fresh-pipelines`` pipelines, each twice: a
first pass cuts the pipelines' slices, a second, once their lanes are prepared, finds them warm), and a restart on the same
warehouse with the saved policy (seconds to ready, its peak RSS). ``--memory-limit`` and
``--learn-max-rows`` are passed to `frugal serve`; ``--stores`` writes the corpus to that many
stores (the paper's: 4).

    python benchmarks/service.py --scale 0.25,0.5,1 --pipelines 120 --days 60 [--memory-limit 2GB]
    python benchmarks/service.py --scale 0.125,1 --pipelines 3000 --days 120 --stores 4   # the paper
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import CACHE, ROOT, cached

PAGE = 4096


def corpus(pipelines: int, days: int, seed: int) -> Path:
    """The store of a simulated corpus (simulated once, cached)."""
    return corpus_stores(pipelines, days, seed, 1)[0]


def corpus_stores(pipelines: int, days: int, seed: int, stores: int) -> list[Path]:
    """The ``stores`` MLMD stores of a simulated corpus (simulated once, cached)."""
    from pipelines.simulator import simulate
    from pipelines.simulator.corpus import store_file_names

    out = CACHE / (f"service-{pipelines}x{days}-s{seed}" + (f"-k{stores}" if stores > 1 else ""))

    def build(folder: Path) -> None:
        print(f"simulating {pipelines} pipelines x {days} days into {stores} store(s) (cached in {out}) ...",
              flush=True)
        simulate(folder, pipelines=pipelines, days=days, seed=seed, stores=stores, progress=False)

    cached(out, build)
    return [out / name for name, _ in store_file_names(stores)]


def pct(values, q):
    import numpy as np

    return float(np.percentile(values, q)) if len(values) else float("nan")


def open_loop(url: str, targets: list[tuple[str, str | None]], rate: float, seconds: float, *,
              during=None, warmed=None) -> dict:
    """Open-loop load: decision i (for ``targets[i % len]``, (pipeline, source)) is sent at
    start + i / rate, by a pool of threads that each keep one HTTP/1.1 connection alive (the
    standard library's client: little work per request); a connection idle for 2 s is
    replaced, as pooled clients do before the server drops it. Returns latencies, send times
    (seconds into the load) and errors."""
    n = int(rate * seconds)
    lat: list[float] = []
    sent: list[float] = []
    errors: list[str] = []
    local = threading.local()
    host, port = url.split("//", 1)[1].split(":")
    clock = {"start": 0.0}

    def one(i: int, record: bool = True) -> None:
        conn = getattr(local, "conn", None)
        if conn is not None and time.perf_counter() - local.used > 2.0:
            conn.close()          # expire idle connections before the server's keep-alive (5 s) does
            conn = None
        if conn is None:
            conn = local.conn = http.client.HTTPConnection(host, int(port), timeout=10)
        local.used = time.perf_counter()
        pipeline, source = targets[i % len(targets)]
        body = json.dumps({"pipeline": pipeline, "run_id": f"bench-{i}", **({"source": source} if source else {})})
        t = time.perf_counter()
        try:
            conn.request("POST", "/api/v1/decisions", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            text = r.read()
            ok = r.status == 200 and json.loads(text)["action"] in ("run", "prune")
        except (OSError, http.client.HTTPException, ValueError) as exc:
            conn.close()
            local.conn = None
            ok, text = False, str(exc).encode()
        if record:
            lat.append(time.perf_counter() - t)
            sent.append(t - clock["start"])
            if not ok:
                errors.append(text[:200].decode(errors="replace"))

    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(lambda i: one(-1 - i, False), range(64)))    # warm-up: open the connections
        if warmed is not None:
            warmed()
        start = clock["start"] = time.perf_counter()
        load_started = time.time()
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one, i)
            if during is not None:
                during(i, n, start)
    return {"lat": lat, "sent": sent, "errors": errors, "load_started": load_started,
            "elapsed": time.perf_counter() - start}


def measure(s, live: Path, args, append_run) -> dict:
    """Load the running service ``s``; return the raw figures."""
    trainings = s.sql("SELECT count(*) FROM graphlets WHERE source_id = 'prod'")[0][0]
    pipelines = [r[0] for r in s.sql("SELECT DISTINCT pipeline FROM graphlets WHERE source_id = 'prod' ORDER BY 1")]
    live_pipeline = s.sql("SELECT pipeline FROM graphlets WHERE source_id = 'live' GROUP BY 1 "
                          "ORDER BY count(*) DESC, 1 LIMIT 1")[0][0]
    print(f"{trainings:,} trainings of {len(pipelines)} pipelines (+ a growing store)", flush=True)

    # the growing store: a run appended every second by another process (as a pipeline would)
    grower = subprocess.Popen([sys.executable, __file__, "--grow", str(live), live_pipeline],
                              stdout=subprocess.PIPE, text=True)
    grower.stdout.readline()   # its first run is written: its start-up (imports) is not in the load

    refit: dict = {}

    def during(i: int, n: int, start: float) -> None:
        if args.refit_during_load and i == n // 4:   # an operator's refit, a quarter into the load
            refit["thread"] = threading.Thread(target=refit_now, args=(s, refit, time.perf_counter() - start))
            refit["thread"].start()

    before = {}

    def warmed() -> None:
        before["metrics"] = s.get("/metrics").text

    load = open_loop(s.url, [(p, "prod") for p in pipelines], args.rate, args.seconds, during=during,
                     warmed=warmed)
    lat, sent, errors, load_started = load["lat"], load["sent"], load["errors"], load["load_started"]
    refreshes_before = refresh_count(before["metrics"])
    gc_before = histogram(before["metrics"], "frugal_gc_pause_seconds", generation="2")
    elapsed = load["elapsed"]
    if "thread" in refit:
        refit.pop("thread").join()
    sources = s.get("/api/v1/sources").json()
    metrics = s.get("/metrics").text
    server = server_latency(metrics)
    server["refreshes"] = refresh_count(metrics) - refreshes_before
    gc_after = histogram(metrics, "frugal_gc_pause_seconds", generation="2")
    server["gc2_during_load"] = {f"le_{k:g}": int(v - gc_before.get(k, 0)) for k, v in gc_after.items()}
    grower.send_signal(signal.SIGTERM)   # one writer at a time on the growing store
    appended = int((grower.communicate(timeout=60)[0] or "0").split()[-1])

    # decisions that read the store first, from this run's inputs
    fresh: list[float] = []
    fresh_errors = 0
    for _ in range(args.fresh):
        ids = append_run(live, live_pipeline, started_at=time.time(), train=False)
        t = time.perf_counter()
        r = s.post("/api/v1/decisions", json={"pipeline": live_pipeline, "source": "live",
                                              "inputs": [ids["Examples"], ids["ExampleStatistics"],
                                                         ids["Schema"], ids["ExampleAnomalies"]]})
        fresh.append(time.perf_counter() - t)
        fresh_errors += r.status_code != 200
    ledger = s.sql("SELECT count(*) FROM decisions")[0][0]
    if refit:
        server["refit"] = refit
    slowest = sorted(zip(lat, sent), reverse=True)[:5]
    return {"trainings": trainings, "pipelines": pipelines, "lat": lat, "errors": errors,
            "slowest": [[round(t, 1), round(x * 1e3, 1)] for x, t in slowest], "load_started": load_started, "elapsed": elapsed,
            "fresh": fresh, "fresh_errors": fresh_errors, "ledger": ledger, "appended": appended,
            "last_refresh": sources.get("last_refresh"), "server": server}


def histogram(metrics: str, name: str, **labels) -> dict[float, float]:
    """Cumulative buckets (upper bound -> count) of one Prometheus histogram of the service."""
    from prometheus_client.parser import text_string_to_metric_families

    return {float(sample.labels["le"]): sample.value
            for family in text_string_to_metric_families(metrics) if family.name == name
            for sample in family.samples
            if sample.name == name + "_bucket" and all(sample.labels.get(k) == v for k, v in labels.items())}


def share_within(buckets: dict[float, float], bound: float) -> float:
    total = buckets.get(float("inf"), 0.0)
    return buckets.get(bound, float("nan")) / total if total else float("nan")


def refit_now(s, out: dict, at: float) -> None:
    """``POST /api/v1/policy/refit`` (it returns once the new policy is in use); record when and how long."""
    t = time.perf_counter()
    r = s.http.post(s.url + "/api/v1/policy/refit", timeout=1800)
    out.update({"at_s": round(at, 1), "seconds": round(time.perf_counter() - t, 1), "status": r.status_code})


def refresh_count(metrics: str) -> int:
    """Background refresh cycles the service has finished so far (its refresh histogram)."""
    return int(histogram(metrics, "frugal_refresh_seconds").get(float("inf"), 0))


def server_latency(metrics: str) -> dict:
    """The service's own view: decisions and ledger commits within 10 and 50 ms (its histograms)."""
    dec = histogram(metrics, "frugal_http_request_seconds", route="/api/v1/decisions")
    led = histogram(metrics, "frugal_ledger_commit_seconds")
    return {"requests": int(dec.get(float("inf"), 0)), "share_le_50ms": share_within(dec, 0.05),
            "commits": int(led.get(float("inf"), 0)), "commits_le_10ms": share_within(led, 0.01),
            "commits_le_50ms": share_within(led, 0.05)}


def grow(store: str, pipeline: str) -> None:
    """``--grow``: append a run to ``store`` every second until SIGTERM; print how many."""
    sys.path.insert(0, str(ROOT / "tests"))
    from service.runs import append_run

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    count = 0
    while not stop.is_set():
        append_run(Path(store), pipeline, started_at=time.time())
        count += 1
        if count == 1:
            print("started", flush=True)
        stop.wait(1.0)
    print(count, flush=True)


def tree_rss(session: int) -> dict[int, int]:
    """RSS in bytes of each process of a session (the service under `timeout`, its children)."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) != session:      # fields: state ppid pgrp session ...
                continue
            out[int(stat.parent.name)] = int((stat.parent / "statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
    return out


class RssSampler(threading.Thread):
    """Peak RSS of the service process and of the rest of its session (its refit children), summed and apart."""

    def __init__(self, session: int, service_pid: int | None, every: float = 0.25):
        super().__init__(daemon=True)
        self.session, self.service_pid, self.every = session, service_pid, every
        self.peak_service = self.peak_children = self.peak_total = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            rss = tree_rss(self.session)
            service = rss.get(self.service_pid, 0)
            children = sum(v for pid, v in rss.items() if pid not in (self.service_pid, self.session))
            self.peak_service = max(self.peak_service, service)
            self.peak_children = max(self.peak_children, children)
            self.peak_total = max(self.peak_total, service + children)
            self.stop_event.wait(self.every)


def fresh_decisions(s, count: int) -> dict:
    """Decisions from inputs: for ``count`` pipelines spread over the fleet, the input artifacts
    of each one's newest training, twice: a pass over every pipeline (cold: its slice is cut),
    then, once the service says their lanes are prepared (in the background: ``prepared_after_s``
    after the cold pass), a second pass (warm: as for a gate's next run, which comes hours after
    its first); latencies in ms."""
    rows = s.sql(f"""
        WITH newest AS (
            SELECT source_id, pipeline, arg_max(trainer_execution_id, started_at) AS trainer,
                   row_number() OVER (ORDER BY hash(pipeline)) AS k
            FROM graphlets WHERE trainer_execution_id IS NOT NULL GROUP BY 1, 2)
        SELECT n.source_id, n.pipeline, list(DISTINCT e.artifact_id ORDER BY e.artifact_id)
        FROM newest n JOIN events e ON e.source_id = n.source_id AND e.execution_id = n.trainer
        WHERE e.type = 'INPUT' AND n.k <= {int(count)} GROUP BY 1, 2 ORDER BY 2""")
    cold, warm, errors = [], [], []
    slices = lambda: s.get("/api/v1/sources").json()["progress"]["slices"]  # noqa: E731
    waited = None
    for times in (cold, warm):
        if times is warm:   # the slices' lanes are prepared in the background after the first decision
            t = time.perf_counter()
            while slices()["prepared"] < min(len(rows), slices()["kept"]) and time.perf_counter() - t < 120:
                time.sleep(0.05)
            waited = time.perf_counter() - t
        for source, pipeline, inputs in rows:
            t = time.perf_counter()
            r = s.post("/api/v1/decisions", json={"pipeline": pipeline, "source": source, "inputs": inputs})
            times.append(time.perf_counter() - t)
            if r.status_code != 200:
                errors.append(r.text[:200])
    every = cold + warm
    ms = lambda x: round(x * 1e3, 1)  # noqa: E731
    return {"pipelines": len(rows), "errors": len(errors), "first_errors": errors[:3],
            "prepared_after_s": round(waited, 2), "prepared": slices()["prepared"],
            "cold_p50_ms": ms(pct(cold, 50)), "cold_max_ms": ms(max(cold)),
            "warm_p50_ms": ms(pct(warm, 50)), "warm_p99_ms": ms(pct(warm, 99)), "warm_max_ms": ms(max(warm)),
            "p50_ms": ms(pct(every, 50)), "p99_ms": ms(pct(every, 99)), "max_ms": ms(max(every)),
            "within_1s": sum(x <= 1.0 for x in every), "of": len(every)}


def scale_run(fraction: float, args, start_service) -> dict:
    """One size of ``--scale``: a cold start of `frugal serve` on the corpus of this fraction."""
    pipelines = max(2, round(args.pipelines * fraction))
    stores = corpus_stores(pipelines, args.days, args.seed, args.stores)
    work = Path(tempfile.mkdtemp(prefix="frugal-bench-scale-"))
    extra = (["--source-id", "prod"] if len(stores) == 1 else []) + ["--ingest-every", "3600"]
    if args.memory_limit:
        extra += ["--memory-limit", args.memory_limit]
    if args.learn_max_rows:
        extra += ["--learn-max-rows", str(args.learn_max_rows)]
    row: dict = {"fraction": fraction, "pipelines": pipelines, "days": args.days}
    try:
        t0 = time.perf_counter()
        s = start_service(stores, work / "w.duckdb", extra=extra, wait_ready=False, timeout=3600)
        sampler = RssSampler(s.proc.pid, s.pid)
        sampler.start()
        try:
            pipeline = None
            while True:   # the first decision answered: the warm-up's fallback, or the policy's
                body = s.get("/readyz").json()
                if body.get("answering") or body.get("ready"):
                    if pipeline is None:
                        pipeline = s.sql("SELECT pipeline FROM graphlets GROUP BY 1 ORDER BY 1 LIMIT 1")[0][0]
                    r = s.post("/api/v1/decisions", json={"pipeline": pipeline})
                    if r.status_code == 200:
                        row["first_answer_s"] = round(time.perf_counter() - t0, 2)
                        row["first_answer"] = r.json()["policy_version"]
                        break
                time.sleep(0.1)
            while s.get("/readyz").status_code != 200:
                time.sleep(0.2)
            row["first_policy_s"] = round(time.perf_counter() - t0, 2)
            while s.get("/readyz").json()["pending"]:     # the first report too
                time.sleep(0.2)
            first = s.call("GET", "/api/v1/sources")
            while "seconds" not in first["last_refresh"]:   # the first cycle's figures are recorded last
                time.sleep(0.2)
                first = s.call("GET", "/api/v1/sources")
            row["trainings"] = s.sql("SELECT count(*) FROM graphlets")[0][0]
            row["first_refresh_s"] = round(first["last_refresh"]["seconds"], 2)
            row["first_refresh_phases"] = first["last_refresh"]["phases"]
            row["training_set"] = first["progress"]["last_refit"].get("training_set")
            row["memory_limit"] = first["progress"]["memory_limit"]
            names = [r[0] for r in s.sql("SELECT DISTINCT pipeline FROM graphlets ORDER BY 1")]
            lat = []
            for i in range(args.decisions):
                t = time.perf_counter()
                r = s.post("/api/v1/decisions", json={"pipeline": names[i % len(names)], "run_id": f"scale-{i}"})
                lat.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text
            row["decision_p50_ms"] = round(pct(lat, 50) * 1e3, 2)
            row["decision_p99_ms"] = round(pct(lat, 99) * 1e3, 2)
            # open-loop load over every pipeline
            targets = [(r[0], r[1]) for r in s.sql("SELECT pipeline, any_value(source_id) FROM graphlets "
                                                   "GROUP BY 1 ORDER BY 1")]
            load = open_loop(s.url, targets, args.rate, args.seconds)
            row["load"] = {"rate": args.rate, "seconds": round(load["elapsed"], 1), "decisions": len(load["lat"]),
                           "errors": len(load["errors"]), "p50_ms": round(pct(load["lat"], 50) * 1e3, 2),
                           "p99_ms": round(pct(load["lat"], 99) * 1e3, 2),
                           "max_ms": round(max(load["lat"]) * 1e3, 1)}
            # decisions from a run's inputs: the newest training's input artifacts of 20 pipelines,
            # each twice (a first pass cuts the pipelines' slices, a second finds them warm)
            row["fresh"] = fresh_decisions(s, args.fresh_pipelines)
            t = time.perf_counter()
            r = s.http.post(s.url + "/api/v1/policy/refit", timeout=3600)   # minutes at the paper's scale
            assert r.status_code == 200, r.text
            did = r.json()
            row["refit_refresh_s"] = round(did.get("seconds", time.perf_counter() - t), 2)
            row["refit_error"] = did.get("refit_error")
            did = s.call("POST", "/api/v1/ingest")
            row["idle_refresh_s"] = round(did["seconds"], 3)
        finally:
            sampler.stop_event.set()
            sampler.join()
            s.stop()
        # a restart on the same warehouse with the saved policy: ready (a policy in use) at once?
        t0 = time.perf_counter()
        s = start_service(stores, work / "w.duckdb", extra=extra, wait_ready=False, timeout=600)
        again = RssSampler(s.proc.pid, s.pid)
        again.start()
        try:
            while s.get("/readyz").status_code != 200:
                time.sleep(0.1)
            row["restart_ready_s"] = round(time.perf_counter() - t0, 2)
            pipeline = targets[0]
            r = s.post("/api/v1/decisions", json={"pipeline": pipeline[0], "source": pipeline[1]})
            row["restart_answer"] = r.json().get("policy_version") if r.status_code == 200 else r.text[:200]
        finally:
            again.stop_event.set()
            again.join()
            s.stop()
        row["restart_peak_rss_mb"] = round(again.peak_total / 1e6)
        row["peak_rss_service_mb"] = round(sampler.peak_service / 1e6)
        row["peak_rss_children_mb"] = round(sampler.peak_children / 1e6)
        row["peak_rss_total_mb"] = round(sampler.peak_total / 1e6)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return row


def scale(args) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import start_service  # the launcher the tests use (tests/conftest.py)

    CACHE.mkdir(exist_ok=True)
    rows = []
    for fraction in [float(f) for f in args.scale.split(",")]:
        row = scale_run(fraction, args, start_service)
        rows.append(row)
        print(f"{row['fraction']:>5g} ({row['pipelines']} pipelines x {row['days']} days, {row['trainings']:,} "
              f"trainings): first answer {row['first_answer_s']:.1f} s, first policy {row['first_policy_s']:.1f} s, "
              f"peak RSS service {row['peak_rss_service_mb']} MB + children {row['peak_rss_children_mb']} MB "
              f"(together {row['peak_rss_total_mb']} MB, limit {row['memory_limit']}), first refresh "
              f"{row['first_refresh_s']:.1f} s, refit {row['refit_refresh_s']:.1f} s, idle refresh "
              f"{row['idle_refresh_s']:.2f} s, decisions p50 {row['decision_p50_ms']:.1f} ms / p99 "
              f"{row['decision_p99_ms']:.1f} ms; at {row['load']['rate']:g}/s for {row['load']['seconds']:g} s: "
              f"p50 {row['load']['p50_ms']} / p99 {row['load']['p99_ms']} ms, {row['load']['errors']} errors; "
              f"from inputs ({row['fresh']['pipelines']} pipelines, twice): first p50 {row['fresh']['cold_p50_ms']} "
              f"/ max {row['fresh']['cold_max_ms']} ms, lanes prepared {row['fresh']['prepared_after_s']} s after, "
              f"warm p50 {row['fresh']['warm_p50_ms']} / p99 {row['fresh']['warm_p99_ms']} / max "
              f"{row['fresh']['warm_max_ms']} ms, {row['fresh']['within_1s']}/{row['fresh']['of']} within 1 s, "
              f"{row['fresh']['errors']} errors; restart ready in {row['restart_ready_s']} s "
              f"(peak {row['restart_peak_rss_mb']} MB)", flush=True)
    print(json.dumps({"scale": rows}))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--grow":
        return grow(sys.argv[2], sys.argv[3])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipelines", type=int, default=450)
    ap.add_argument("--days", type=int, default=100)
    ap.add_argument("--seed", type=int, default=77)
    ap.add_argument("--rate", type=float, default=100.0, help="decisions per second")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--fresh", type=int, default=30, help="decisions with inputs, timed one by one")
    ap.add_argument("--ingest-every", type=float, default=5.0)
    ap.add_argument("--refit-during-load", action="store_true",
                    help="relearn the policy on demand a quarter into the load (the whole warehouse, in the background)")
    ap.add_argument("--scale", default=None, help="fractions of the corpus to serve from a cold start each "
                                                 "(e.g. 0.25,0.5,1), instead of the load test")
    ap.add_argument("--memory-limit", default=None, help="frugal serve --memory-limit (with --scale)")
    ap.add_argument("--learn-max-rows", type=int, default=None, help="frugal serve --learn-max-rows (with --scale)")
    ap.add_argument("--decisions", type=int, default=300, help="sequential decisions timed per size (--scale)")
    ap.add_argument("--stores", type=int, default=1, help="MLMD stores the corpus is written to (--scale; "
                                                        "the paper corpus: 4)")
    ap.add_argument("--fresh-pipelines", type=int, default=20,
                    help="pipelines whose newest training's inputs are decided from (--scale)")
    args = ap.parse_args()
    if args.scale:
        return scale(args)

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import start_service  # the launcher the tests use (tests/conftest.py)
    from service.runs import append_run

    CACHE.mkdir(exist_ok=True)
    big = corpus(args.pipelines, args.days, args.seed)
    small_src = corpus(8, 20, args.seed + 1)
    work = Path(tempfile.mkdtemp(prefix="frugal-bench-service-"))
    try:
        live = work / "live.sqlite"
        shutil.copyfile(small_src, live)
        warehouse = work / "w.duckdb"
        t0 = time.perf_counter()
        s = start_service([big, live], warehouse, extra=["--source-id", "prod", "--source-id", "live",
                                                         "--ingest-every", str(args.ingest_every)], timeout=3600,
                          lifetime_s=3 * 3600 + args.seconds)
        while s.get("/readyz").json()["pending"]:      # the first report is drawn too
            time.sleep(0.5)
        startup_s = time.perf_counter() - t0
        print(f"service ready in {startup_s:.0f} s", flush=True)
        try:
            f = measure(s, live, args, append_run)
        finally:
            s.stop()
        # the cold batch path of today, on a copy of the same warehouse (the service held the file)
        cold_wh = work / "cold.duckdb"
        shutil.copyfile(warehouse, cold_wh)
        if warehouse.with_name(warehouse.name + ".wal").exists():   # a stop cut short leaves its log
            shutil.copyfile(warehouse.with_name(warehouse.name + ".wal"), cold_wh.with_name(cold_wh.name + ".wal"))
        cold = []
        for pipeline in f["pipelines"][:2]:
            t = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "frugal", "prune", "decide", "--warehouse", str(cold_wh),
                                   "--pipeline", pipeline], capture_output=True, text=True, cwd=ROOT)
            if done.returncode != 0:
                sys.exit(f"the cold `frugal prune decide` failed ({done.returncode}):\n{done.stderr[-3000:]}")
            cold.append(time.perf_counter() - t)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    lat, errors, fresh = f["lat"], f["errors"], f["fresh"]
    p50, p99 = pct(lat, 50) * 1e3, pct(lat, 99) * 1e3
    cold_s = min(cold)
    fresh_p50, fresh_p99 = pct(fresh, 50), pct(fresh, 99)
    print(f"\n{'':38}{'service':>12}{'cold prune decide':>20}")
    print(f"{'decision latency p50':38}{p50:>9.1f} ms{cold_s * 1e3:>17.0f} ms")
    print(f"{'decision latency p99':38}{p99:>9.1f} ms")
    print(f"{'requests (errors)':38}{len(lat):>9,} ({len(errors)})")
    print(f"{'throughput':38}{len(lat) / f['elapsed']:>9.1f}/s  (target {args.rate:g}/s for {args.seconds:g} s)")
    print(f"{'runs appended during load':38}{f['appended']:>9}  (refresh every {args.ingest_every:g} s; "
          f"{f['server']['refreshes']} refreshes finished during the load)")
    if "refit" in f["server"]:
        r = f["server"]["refit"]
        print(f"{'refit on demand during the load':38}{r['seconds']:>7.1f} s  (from {r['at_s']:g} s; HTTP {r['status']})")
    if not f["server"]["refreshes"]:
        print("  note: no background refresh finished during the load, so these figures do not include one; "
              "run longer (--seconds) than the refresh interval")
    print(f"{'decisions with inputs p50 / p99':38}{fresh_p50 * 1e3:>6.0f} / {fresh_p99 * 1e3:.0f} ms "
          f"({f['fresh_errors']} errors)")
    print(f"{'ledger rows':38}{f['ledger']:>9,}")
    print(f"{'server-side: decisions <= 50 ms':38}{f['server']['share_le_50ms']:>9.2%}  "
          f"(of {f['server']['requests']:,}, the service's own histogram)")
    print(f"{'server-side: ledger commits <= 10 / 50 ms':38}{f['server']['commits_le_10ms']:>9.2%} / "
          f"{f['server']['commits_le_50ms']:.2%}  (of {f['server']['commits']:,} group commits)")
    print(f"cold path / service p99: {cold_s / (p99 / 1e3):,.0f}x   (cold path / service p50: {cold_s / (p50 / 1e3):,.0f}x)")
    bars = {"p99_le_50ms": p99 <= 50, "zero_errors": not errors and not f["fresh_errors"],
            "100x_cold": cold_s / (p99 / 1e3) >= 100, "fresh_p99_le_1s": fresh_p99 <= 1.0}
    print("bars: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in bars.items()))
    if errors:
        print("first errors:", errors[:3])
    print(json.dumps({"trainings": f["trainings"], "pipelines": len(f["pipelines"]), "startup_s": round(startup_s, 1),
                      "requests": len(lat), "errors": len(errors), "p50_ms": round(p50, 2), "p99_ms": round(p99, 2),
                      "throughput": round(len(lat) / f["elapsed"], 1), "cold_decide_s": round(cold_s, 2),
                      "speedup_p99": round(cold_s / (p99 / 1e3), 1), "fresh_p50_ms": round(fresh_p50 * 1e3, 1),
                      "fresh_p99_ms": round(fresh_p99 * 1e3, 1), "runs_appended": f["appended"],
                      "server": f["server"], "slowest_at_s_ms": f["slowest"], "load_started": f["load_started"],
                      "last_refresh": f["last_refresh"], "bars": bars}))


if __name__ == "__main__":
    main()
