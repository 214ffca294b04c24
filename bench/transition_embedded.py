"""Order transitions in-process on the embedded SQLite database, against raw sqlite3 doing the same
writes in one transaction (issue 6, benchmark 2). One command, JSON out (stdout, and --out FILE); a
short summary goes to stderr.

    .venv/bin/python bench/transition_embedded.py [--quick] [--clients 1,4,16] [--runs 3] [--out FILE]

What one invocation does (bench/README.md, section "transition_embedded"):

1. A fresh temporary EOMS_DATA_DIR with the project's own settings for the embedded database (the
   SQLite file, WAL, IMMEDIATE transactions, synchronous=NORMAL, foreign keys on, 30 s busy
   timeout), migrated; a company made through the services and --orders orders walked to
   IN_EXECUTION through the real transitions (as bench/transition.py does).
2. "eoms": C threads (each with its own Django connection and its own orders) call
   eoms.orders.services.transition_order(name="hold" / "resume") in turn, with the version read,
   as the API endpoint does; each call gets a freshly loaded actor (as each request does), loaded
   outside the timed call. SQL statements per call are counted with CaptureQueriesContext.
3. "sqlite3": the same tables copied from sqlite_master (same columns, types, indexes and foreign
   keys), the same orders; C threads, each with its own sqlite3 connection with the same pragmas,
   run for --raw-seconds: BEGIN IMMEDIATE; SELECT the order; UPDATE with version check; INSERT
   history; INSERT audit entry (unsealed, as eoms.core.audit.record writes it: no seq, no hashes);
   INSERT outbox message; COMMIT.
4. Median of the runs, per client count: throughput, p50/p99, 409 and error rates (e.g. "database
   is locked"), and the ratio EOMS / sqlite3; this process's peak RSS; then the sealing of the
   entries the runs wrote (eoms.core.audit.seal, which the relay does after each pass; not part of
   either figure above), timed; checks that every successful transition left exactly one history
   row, one audit entry and one outbox message, and that the audit chain verifies. The temporary
   directory is removed.
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

TARGET_RATIO = 0.10
TABLES = {
    "orders_order": "raw_order",
    "orders_orderhistory": "raw_history",
    "core_auditentry": "raw_audit",
    "core_outboxmessage": "raw_outbox",
}


def count_statements(company, order) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from eoms.accounts.models import User
    from eoms.orders.services import transition_order

    out = {}
    for name in ("hold", "resume"):
        actor = User.objects.get(pk=company.pm.pk)
        with CaptureQueriesContext(connection) as ctx:
            transition_order(actor=actor, order_id=order.id, name=name, comment=c.HOLD_COMMENT)
        verbs = Counter(q["sql"].split(None, 1)[0].upper() for q in ctx.captured_queries)
        out[name] = {"statements": len(ctx.captured_queries), "by_verb": dict(sorted(verbs.items()))}
    out["mean"] = (out["hold"]["statements"] + out["resume"]["statements"]) / 2
    out["sqlite3"] = 7  # BEGIN, SELECT, UPDATE, 3 × INSERT, COMMIT
    return out


# --- raw sqlite3 -------------------------------------------------------------------------------------


def _rename(sql: str) -> str:
    for ours, copy in TABLES.items():
        sql = sql.replace(f'"{ours}"', f'"{copy}"')
    return sql


def setup_raw_tables(db_path: str, order_ids: list) -> dict:
    """Copies of our tables from their own DDL (sqlite_master), with their indexes and foreign keys
    pointing at the copies, and of the orders; answers a real hold's audit changes and outbox
    payload, so the raw rows are the size of ours."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        ddl = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE tbl_name IN ({}) AND sql IS NOT NULL".format(
                ",".join("?" * len(TABLES))
            ),
            list(TABLES),
        ).fetchall()
        conn.execute("BEGIN")
        for kind, _name, sql in sorted(ddl, key=lambda r: r[0] != "table"):  # tables first
            if kind == "index":
                sql = re.sub(r'INDEX "([^"]+)"', lambda m: f'INDEX "raw_{m.group(1)}"', sql, count=1)
            conn.execute(_rename(sql))
        hexes = [uuid.UUID(str(i)).hex for i in order_ids]
        conn.execute(
            "INSERT INTO raw_order SELECT * FROM orders_order WHERE id IN ({})".format(",".join("?" * len(hexes))),
            hexes,
        )
        changes, object_repr = conn.execute(
            "SELECT changes, object_repr FROM core_auditentry WHERE action = 'orders.hold' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        payload = conn.execute(
            "SELECT payload FROM core_outboxmessage WHERE event_type = 'orders.order_transitioned' "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
        conn.execute("COMMIT")
        copied = conn.execute("SELECT count(*) FROM raw_order").fetchone()[0]
    finally:
        conn.close()
    if copied != len(order_ids):
        raise AssertionError(f"copied {copied} orders, expected {len(order_ids)}")
    return {"changes": changes, "payload": payload, "object_repr": object_repr, "tables": len(ddl)}


def _ts(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")  # how Django stores a datetime in SQLite


class Raw:
    """One client's sqlite3 connection with the project's pragmas and busy timeout, doing a
    transition's writes in one IMMEDIATE transaction."""

    def __init__(self, db_path: str, literals: dict, pm: str, engineer: str):
        self.conn = sqlite3.connect(db_path, isolation_level=None, timeout=30, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            self.conn.execute(f"PRAGMA {pragma}")
        self.literals = literals
        self.pm, self.engineer = pm, engineer

    def transition(self, oid: str) -> str:
        conn = self.conn
        now = datetime.now(UTC)
        conn.execute("BEGIN IMMEDIATE")
        try:
            state, version = conn.execute("SELECT state, version FROM raw_order WHERE id = ?", (oid,)).fetchone()
            hold = state == "IN_EXECUTION"
            target = "ON_HOLD" if hold else "IN_EXECUTION"
            owner = self.pm if hold else self.engineer
            deadline = now + timedelta(days=30 if hold else 120)
            sql = (
                "UPDATE raw_order SET state = ?, stage_owner_id = ?, stage_entered_at = ?, stage_deadline = ?, "
                "updated_by_id = ?, version = version + 1, updated_at = ?"
                + (", held_from = 'IN_EXECUTION'" if hold else "")
                + " WHERE id = ? AND version = ? AND state = ?"
            )
            updated = conn.execute(
                sql, (target, owner, _ts(now), _ts(deadline), self.pm, _ts(now), oid, version, state)
            ).rowcount
            if updated != 1:
                raise AssertionError("version check failed under the write lock")
            conn.execute(
                "INSERT INTO raw_history (order_id, transition, from_state, to_state, actor_id, at, comment) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (oid, "hold" if hold else "resume", state, target, self.pm, _ts(now), c.HOLD_COMMENT if hold else ""),
            )
            conn.execute(
                "INSERT INTO raw_audit (seq, at, actor_id, actor_repr, ip, request_id, action, object_type, "
                "object_id, object_repr, changes, prev_hash, hash) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', '')",
                (
                    _ts(now),
                    self.pm,
                    "bench-pm",
                    None,
                    uuid.uuid4().hex,
                    "orders.hold" if hold else "orders.resume",
                    "orders.order",
                    str(uuid.UUID(oid)),
                    self.literals["object_repr"],
                    self.literals["changes"],
                ),
            )
            conn.execute(
                "INSERT INTO raw_outbox (message_id, event_type, event_version, aggregate_type, aggregate_id, "
                "payload, actor_id, request_id, created_at, sent_at, attempts, next_attempt_at, last_error) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, NULL, '')",
                (
                    uuid.uuid4().hex,
                    "orders.order_transitioned",
                    1,
                    "orders.order",
                    str(uuid.UUID(oid)),
                    self.literals["payload"],
                    str(uuid.UUID(self.pm)),
                    uuid.uuid4().hex,
                    _ts(now),
                ),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return target

    def close(self):
        self.conn.close()


def run_raw(db_path: str, literals: dict, company, order_ids: list[str], *, clients: int, seconds: float) -> dict:
    pm, engineer = company.pm.pk.hex, company.engineer.pk.hex
    barrier = threading.Barrier(clients + 1)
    lock = threading.Lock()
    latencies, tally, messages = [], Counter(), Counter()
    stop = threading.Event()

    def client(i):
        raw = Raw(db_path, literals, pm, engineer)
        mine = [uuid.UUID(o).hex for o in order_ids[i::clients]]
        lat, local, msgs = [], Counter(), Counter()
        try:
            barrier.wait()
            k = 0
            while not stop.is_set():
                oid = mine[k % len(mine)]
                k += 1
                t = time.perf_counter()
                try:
                    raw.transition(oid)
                    local["ok"] += 1
                except sqlite3.OperationalError as exc:
                    local["error"] += 1
                    msgs[str(exc)[:120]] += 1
                lat.append(1000 * (time.perf_counter() - t))
        finally:
            raw.close()
            with lock:
                latencies.extend(lat)
                tally.update(local)
                messages.update(msgs)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return _figures(clients, latencies, tally, messages, wall)


def _figures(clients, latencies, tally, messages, wall) -> dict:
    latencies.sort()
    attempts = tally["ok"] + tally["conflict"] + tally["error"]
    return {
        "clients": clients,
        "transitions": attempts,
        "ok": tally["ok"],
        "tps": tally["ok"] / wall if wall else 0.0,
        "p50_ms": c.percentile(latencies, 50),
        "p99_ms": c.percentile(latencies, 99),
        "conflict_rate": tally["conflict"] / attempts if attempts else 0.0,
        "error_rate": tally["error"] / attempts if attempts else 0.0,
        "errors": dict(messages.most_common(5)),
        "wall_s": wall,
    }


# --- EOMS in-process ---------------------------------------------------------------------------------


def run_eoms(company, orders: dict, *, clients: int, transitions: int) -> dict:
    """C threads calling the service; `orders` maps id -> (state, version) as last read."""
    from django.db import close_old_connections, connection

    from eoms.accounts.models import User
    from eoms.core.errors import Conflict, DomainError
    from eoms.orders.services import transition_order

    each = max(1, transitions // clients)
    ids = list(orders)
    barrier = threading.Barrier(clients + 1)
    lock = threading.Lock()
    latencies, tally, messages = [], Counter(), Counter()

    def client(i):
        mine = ids[i::clients]
        # A freshly loaded actor per call (no cached roles or scope), as each request loads its user.
        actors = [User.objects.get(pk=company.pm.pk) for _ in range(each)]
        lat, local, msgs = [], Counter(), Counter()
        try:
            barrier.wait()
            for k in range(each):
                oid = mine[k % len(mine)]
                name, body = c.transition_body(*orders[oid])
                t = time.perf_counter()
                try:
                    order = transition_order(
                        actor=actors[k],
                        order_id=oid,
                        name=name,
                        comment=body.get("comment", ""),
                        expected_version=body["version"],
                    )
                    orders[oid] = (order.state, order.version)
                    local["ok"] += 1
                except Conflict as exc:
                    local["conflict"] += 1
                    msgs[f"409 {exc.code}"] += 1
                except DomainError as exc:
                    local["error"] += 1
                    msgs[f"{exc.status} {exc.code}"] += 1
                except Exception as exc:  # e.g. OperationalError "database is locked": counted, not hidden
                    local["error"] += 1
                    msgs[f"{type(exc).__name__}: {exc}"[:120]] += 1
                    close_old_connections()
                lat.append(1000 * (time.perf_counter() - t))
        finally:
            connection.close()
            with lock:
                latencies.extend(lat)
                tally.update(local)
                messages.update(msgs)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return _figures(clients, latencies, tally, messages, wall)


def resync(orders: dict) -> None:
    from eoms.orders.models import Order

    for oid, state, version in Order.objects.filter(pk__in=list(orders)).values_list("id", "state", "version"):
        orders[str(oid)] = (state, version)


def _counts(order_ids) -> dict:
    from eoms.core.models import AuditEntry, OutboxMessage
    from eoms.orders.models import OrderHistory

    names = ["hold", "resume"]
    return {
        "history": OrderHistory.objects.filter(order_id__in=order_ids, transition__in=names).count(),
        "audit": AuditEntry.objects.filter(action__in=[f"orders.{n}" for n in names], object_id__in=order_ids).count(),
        "outbox": OutboxMessage.objects.filter(
            event_type="orders.order_transitioned", aggregate_id__in=order_ids, payload__transition__in=names
        ).count(),
    }


def peak_rss_mb() -> float:
    return c.memory_kb(os.getpid()).get("VmHWM", 0) / 1024


# --- main --------------------------------------------------------------------------------------------


def benchmark(args) -> dict:
    load_before = os.getloadavg()
    with c.temp_data_dir("eoms-bench-embedded-") as data_dir:
        env = c.bench_env(data_dir, None)
        c.setup_django(env, fast_hasher=True)
        from django.db import connection

        from eoms.core.audit import seal, verify_chain

        migrate_s = c.migrate()
        t0 = time.perf_counter()
        company = c.Company()
        bench_orders = company.orders_in_execution(args.orders)
        counted = company.order_in_execution(args.orders)
        setup_s = time.perf_counter() - t0
        statements = count_statements(company, counted)
        db_path = connection.settings_dict["NAME"]
        options = connection.settings_dict.get("OPTIONS", {})
        literals = setup_raw_tables(str(db_path), [o.id for o in bench_orders])
        orders = {str(o.id): (o.state, o.version) for o in bench_orders}
        order_ids = list(orders)
        before = _counts(order_ids)
        connection.close()

        run_eoms(company, orders, clients=max(args.clients), transitions=2 * max(args.clients))  # warm-up
        warm_ok = _counts(order_ids)["history"] - before["history"]
        results: dict[str, dict[int, list]] = {"eoms": {}, "sqlite3": {}}
        for r in range(args.runs):
            for clients in args.clients:
                res = run_eoms(company, orders, clients=clients, transitions=args.transitions)
                results["eoms"].setdefault(clients, []).append(res)
                if res["conflict_rate"] or res["error_rate"]:
                    resync(orders)
                results["sqlite3"].setdefault(clients, []).append(
                    run_raw(str(db_path), literals, company, order_ids, clients=clients, seconds=args.raw_seconds)
                )
                print(
                    f"run {r + 1}/{args.runs}, {clients} clients: "
                    + ", ".join(f"{k} {v[clients][-1]['tps']:.1f} tps" for k, v in results.items()),
                    file=sys.stderr,
                )
        ok_total = warm_ok + sum(x["ok"] for runs in results["eoms"].values() for x in runs)
        after = _counts(order_ids)
        added = {k: after[k] - before[k] for k in after}
        sealing = c.time_seal(seal)
        problem = verify_chain()
        connection.close()
        journal = sqlite3.connect(str(db_path)).execute("PRAGMA journal_mode").fetchone()[0]

    summary = {k: {str(n): c.median_of(v) for n, v in by.items()} for k, by in results.items()}
    ratios = {
        str(n): summary["eoms"][str(n)]["tps"] / summary["sqlite3"][str(n)]["tps"]
        if summary["sqlite3"][str(n)]["tps"]
        else None
        for n in args.clients
    }
    # Each run's EOMS and sqlite3 ran back to back: the median of the per-run ratios is steadier on a
    # shared machine than the ratio of the medians (both are given).
    paired = {
        str(n): statistics.median(
            e["tps"] / r["tps"] for e, r in zip(results["eoms"][n], results["sqlite3"][n], strict=True) if r["tps"]
        )
        for n in args.clients
        if any(r["tps"] for r in results["sqlite3"][n])
    }
    records = {
        "successful_transitions": ok_total,
        "rows_added": added,
        "one_each": all(v == ok_total for v in added.values()),
        "audit_chain": "intact" if problem is None else str(problem),
    }
    return {
        "benchmark": "transition_embedded",
        "machine": c.machine({"loadavg_before": load_before}),
        "settings": {
            "clients": args.clients,
            "runs": args.runs,
            "transitions_per_run": args.transitions,
            "raw_seconds": args.raw_seconds,
            "orders": args.orders,
            "database": {
                "vendor": "sqlite",
                "journal_mode": journal,
                "transaction_mode": options.get("transaction_mode"),
                "timeout_s": options.get("timeout"),
                "init_command": options.get("init_command"),
            },
            "call": "eoms.orders.services.transition_order(name=hold|resume, expected_version=...) with a fresh actor",
            "migrate_s": migrate_s,
            "setup_s": setup_s,
        },
        "sql_statements": statements,
        "eoms": summary["eoms"],
        "sqlite3": summary["sqlite3"],
        "ratio": paired,
        "ratio_of_medians": ratios,
        "sealing": sealing,
        "peak_rss_mb": peak_rss_mb(),
        "records": records,
        "targets": {
            "ratio_at_least_10_percent": {k: (v is not None and v >= TARGET_RATIO) for k, v in paired.items()},
            "records_one_each": records["one_each"],
            "audit_chain_intact": problem is None,
        },
    }


def summary(result: dict) -> str:
    lines = []
    for n in result["settings"]["clients"]:
        k = str(n)
        e, r = result["eoms"][k], result["sqlite3"][k]
        ratio = result["ratio"].get(k)
        lines.append(
            f"{n:2d} clients: EOMS {e['tps']:7.1f} tps (p50 {e['p50_ms']:.1f} ms, p99 {e['p99_ms']:.1f} ms, "
            f"409 {e['conflict_rate']:.1%}, errors {e['error_rate']:.1%}) | sqlite3 {r['tps']:7.1f} tps "
            f"(errors {r['error_rate']:.1%}) | EOMS/sqlite3 " + (f"{ratio:.3f}" if ratio is not None else "n/a")
        )
    s = result["sql_statements"]
    lines.append(f"SQL statements per transition: EOMS {s['mean']:.1f}, sqlite3 {s['sqlite3']}")
    lines.append(c.sealing_line(result["sealing"]))
    lines.append(f"peak RSS {result['peak_rss_mb']:.1f} MB; records {result['records']}")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke: clients 1,4, 1 run, 24 transitions")
    parser.add_argument("--clients", default=None, help="comma-separated client counts (default 1,4,16)")
    parser.add_argument("--runs", type=int, default=None, help="runs, the median is reported (default 3; --quick 1)")
    parser.add_argument(
        "--transitions", type=int, default=None, help="EOMS transitions per run and client count (default 400)"
    )
    parser.add_argument("--raw-seconds", type=float, default=None, help="sqlite3 duration (default 5; --quick 1)")
    parser.add_argument("--orders", type=int, default=None, help="orders cycled (default 320; --quick 32)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    args.clients = [int(x) for x in (args.clients or ("1,4" if args.quick else "1,4,16")).split(",")]
    args.runs = args.runs or (1 if args.quick else 3)
    args.transitions = args.transitions or (24 if args.quick else 400)
    args.raw_seconds = args.raw_seconds or (1 if args.quick else 5)
    args.orders = args.orders or (32 if args.quick else 320)
    if min(args.clients) < 1 or args.runs < 1 or args.transitions < 1 or args.orders < max(args.clients):
        parser.error("--clients, --runs, --transitions must be positive and --orders ≥ the largest client count")
    return args


def failures(result: dict) -> list[str]:
    """What went wrong (never a speed figure): a 409 or an error of EOMS or sqlite3, a transition
    without its records, a broken audit chain. Any of these makes the exit status 1."""
    out = []
    for key in ("eoms", "sqlite3"):
        for n, e in result[key].items():
            if any(r["error_rate"] or r["conflict_rate"] for r in e["runs"]):
                out.append(f"{key} at {n} clients: {e['errors']}")
    if not result["records"]["one_each"]:
        out.append(f"records: {result['records']}")
    if result["records"]["audit_chain"] != "intact":
        out.append(f"audit chain: {result['records']['audit_chain']}")
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    result = benchmark(args)
    result["failures"] = failures(result)
    c.emit_result(result, args.out, summary(result))
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
