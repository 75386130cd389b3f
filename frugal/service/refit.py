"""Relearn the policy in a child process, from a snapshot of the warehouse.

Learning from a large warehouse builds every training's features, pandas work that holds the
interpreter for hundreds of milliseconds at a time: in the serving process every request
waits for it, whatever the refresher thread's priority. So the service checkpoints, copies the
warehouse file (the checkpointed state: later commits only reach its write-ahead log, which
the copy leaves out), and runs this module on the copy in a process of its own, at a lower CPU
priority; the requests keep the interpreter to themselves.

    python -m frugal.service.refit WAREHOUSE_COPY POLICY_CONFIG_PICKLE POLICY_OUT [--nice N]
        [--memory-limit BYTES] [--max-rows N]

Within ``--memory-limit`` (the service's ``memory_limit``, frugal.service.memory): its DuckDB keeps
to a share of it and spills beside the copy, it learns from a bounded training set
(``optimizer.pruning.training_set``: at most ``--max-rows`` trainings, by default as many as
that share of the limit holds; where the feature SQL still runs out of DuckDB's share, a
sample half as large, whose SQL reads only the sampled trainings' upstream, and so on) and it
runs under an address-space limit, so that a refit too large fails here with MemoryError
instead of drawing the OOM killer onto the service.

Writes the learned policy to POLICY_OUT (atomically, ``optimizer.pruning.live.save``) and every lane's
upcoming training scored by it to POLICY_OUT.upcoming (``describe_upcoming``: the same feature
build); exit status 0 on success, 1 with the reason on stderr otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import pickle
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m frugal.service.refit", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("warehouse", help="a copy of the service's warehouse (read only)")
    ap.add_argument("policy_config", help="a pickled optimizer.pruning.policy.PolicyConfig")
    ap.add_argument("out", help="where to write the learned policy")
    ap.add_argument("--nice", type=int, default=0, help="lower this process's CPU priority by N first")
    ap.add_argument("--parent", type=int, default=None, help="stop when this process (the service) ends")
    ap.add_argument("--memory-limit", type=int, default=None, help="bytes this refit may use (see above)")
    ap.add_argument("--max-rows", type=int, default=None, help="trainings to learn from at most")
    ap.add_argument("--address-limit", type=int, default=None,
                    help="address-space limit in bytes (default: memory limit x CHILD_ADDRESS_FACTOR)")
    args = ap.parse_args(argv)
    if args.nice and hasattr(os, "nice"):
        os.nice(args.nice)
    if args.parent is not None:
        _end_with_parent(args.parent)

    from frugal.service import memory
    from optimizer.pruning import live
    from provenance.warehouse import connect

    if args.memory_limit is not None:
        _limit_address_space(args.address_limit or max(memory.CHILD_ADDRESS_FLOOR,
                                                       int(args.memory_limit * memory.CHILD_ADDRESS_FACTOR)))
    if os.environ.get("FRUGAL_REFIT_DELAY_S"):   # tests: a fit that takes a while (the warm-up answers meanwhile)
        import time

        time.sleep(float(os.environ["FRUGAL_REFIT_DELAY_S"]))
    with open(args.policy_config, "rb") as fh:
        config = pickle.load(fh)
    def open_warehouse():
        con = connect(args.warehouse, read_only=True)
        con.execute("SET threads = 1")   # one core: the serving process keeps the other
        if args.memory_limit is not None:
            memory.apply_duckdb_limits(con, int(args.memory_limit * memory.CHILD_DUCKDB),
                                       os.path.dirname(os.path.abspath(args.out)) + "/duckdb.tmp")
        return con

    learning = int(args.memory_limit * memory.CHILD_LEARNING) if args.memory_limit is not None else None
    con = open_warehouse()
    try:
        frame, columns, keys, plan = _training_set(con, args.max_rows, learning)
        has_trainings = con.execute("SELECT count(*) FROM graphlets").fetchall()[0][0] > 0
    finally:
        con.close()   # DuckDB's buffers and temporary tables go before the fit: the two never add up
    print(f"training set: {plan.to_dict()}", file=sys.stderr, flush=True)
    learned = live.learn(frame, columns, keys, config=config)
    learned = dataclasses.replace(learned, trainings=plan.total)
    del frame
    gc.collect()
    # every lane's upcoming training under the new policy: the same feature build, kept out
    # of the serving process too
    upcoming = {}
    if has_trainings:
        con = open_warehouse()
        try:
            upcoming = live.describe_upcoming(con, learned)
        finally:
            con.close()
    live.write_pickle(upcoming, args.out + ".upcoming")
    live.save(learned, args.out)
    return 0


def _training_set(con, max_rows: int | None, learning: int | None, attempts: int = 4):
    """The training set within DuckDB's share of the limit: where the feature SQL over every
    training runs out of it (spilling does not cover every operator), a sample of half as many
    trainings, whose SQL reads only their upstream, and so on (``attempts`` in all)."""
    import duckdb

    from optimizer.pruning.training_set import MIN_RECENT, rows_for, training_frame

    for attempt in range(attempts):
        try:
            return training_frame(con, max_rows=max_rows, memory_bytes=learning)
        except duckdb.OutOfMemoryException as exc:
            total = con.execute("SELECT count(*) FROM graphlets").fetchall()[0][0]
            rows = min(x for x in (max_rows, rows_for(learning), total) if x is not None)
            if attempt == attempts - 1 or rows // 2 < 2 * MIN_RECENT:
                raise
            max_rows = rows // 2
            print(f"refit: the feature SQL of {rows} trainings ran out of DuckDB's share of the limit "
                  f"({str(exc).splitlines()[0]}); trying a sample of {max_rows}", file=sys.stderr, flush=True)
    raise AssertionError("unreachable")


def _limit_address_space(limit: int) -> None:
    """RLIMIT_AS: past it allocations fail (MemoryError), where the OOM killer would pick a process."""
    try:
        import resource
    except ImportError:  # not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _end_with_parent(parent: int) -> None:
    """A killed service leaves no refit running (Linux: the kernel sends SIGTERM when it dies)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:   # it is gone already
        sys.exit(1)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MemoryError as exc:
        print(f"refit failed: out of memory within its limit ({exc or 'an allocation failed'}); lower "
              "learn_max_rows or raise memory_limit", file=sys.stderr)
        sys.exit(3)
    except Exception as exc:  # the parent reads stderr and says why
        text = str(exc)
        if "Out of Memory" in text or "memory limit" in text.lower():
            print(f"refit failed: DuckDB ran out of memory within its limit: {text.splitlines()[0]}; raise "
                  "memory_limit or free disk beside the warehouse for spilling", file=sys.stderr)
            sys.exit(3)
        print(f"refit failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
