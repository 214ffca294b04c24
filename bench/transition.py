"""Order transitions through the HTTP API under `eoms serve`, against pgbench running the same writes
on the same PostgreSQL (issue 6, benchmark 1). One command, JSON out (stdout, and --out FILE); a
short summary goes to stderr.

    .venv/bin/python bench/transition.py [--quick] [--clients 1,4,16] [--runs 3] [--out FILE]

What one invocation does (bench/README.md, section "transition"):

1. Creates a throwaway database eoms_bench_transition_<pid> on the server (--pg, default
   postgres://postgres@127.0.0.1:5432), migrates it, and makes a company through the services: a PM,
   an engineer, an approver, a project, a default approval flow, and --orders orders walked to
   IN_EXECUTION through the real transitions. The PM gets a personal API token (issue_api_token).
2. Counts the SQL statements of one transition in-process (django.test.utils.CaptureQueriesContext):
   the service call alone, and the whole API request (django.test.Client with the bearer token:
   authentication, roles, scope, the service, the response's order detail).
3. Copies the tables a transition writes (orders, history, audit entries, outbox) with CREATE TABLE
   ... (LIKE ... INCLUDING ALL) plus the same foreign keys, and the orders' rows. The pgbench script
   runs on them the issue's statements: BEGIN; SELECT ... FOR UPDATE; UPDATE with version check;
   INSERT history; INSERT audit (unsealed, as eoms.core.audit.record writes it: no seq, no hashes);
   INSERT outbox; COMMIT.
4. Starts `eoms serve` (gunicorn, its default worker count unless --workers) on a free port, with
   production settings (EOMS_MODE=production, persistent connections of 60 s as deploy/ sets them).
5. For each run and each client count: C threads, each with its own keep-alive http.client
   connection and its own orders, POST /api/v1/orders/{id}/hold and /resume in turn (the pair that
   cycles an order between IN_EXECUTION and ON_HOLD: one role, no guard; hold needs a comment),
   sending the version read; then pgbench with C clients for --pgbench-seconds on each script.
   Throughput, p50/p99 latency, 409 and error rates, and the CPU seconds of the load generator,
   the gunicorn workers, pgbench and this database's PostgreSQL backends (from /proc).
6. Median of the runs; ratio EOMS TPS / pgbench TPS per client count; the workers' peak RSS; then
   the sealing of the audit entries the runs wrote (eoms.core.audit.seal, which the relay does after
   each pass; `eoms serve` runs no relay, so it is in neither figure above), timed; checks that
   every 200 left exactly one history row, one audit entry and one outbox message, and that the
   audit chain verifies. The server is stopped and the database dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

TARGET_RATIO = 0.25
TABLES = {  # ours -> the copy pgbench writes
    "orders_order": "pgb_order",
    "orders_orderhistory": "pgb_history",
    "core_auditentry": "pgb_audit",
    "core_outboxmessage": "pgb_outbox",
}

# --- SQL statements per transition -------------------------------------------------------------------


def _verbs(queries) -> dict:
    verbs = Counter(q["sql"].split(None, 1)[0].upper() for q in queries)
    return dict(sorted(verbs.items()))


def _shape(sql: str) -> str:
    """A statement without its values, short enough to read in a list."""
    sql = re.sub(r"'[^']*'(::\w+)?", "?", sql)
    sql = re.sub(r'"(\w+)"\."(\w+)"(, )?', "", sql) if sql.startswith("SELECT") and " FROM " in sql else sql
    sql = re.sub(r"\b\d+\b", "?", sql)
    return sql[:160]


def count_statements(company, orders, token: str) -> dict:
    """Statements of one hold and one resume: the service call alone, and the whole API request."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from eoms.accounts.models import User
    from eoms.orders.services import transition_order

    out = {}
    service_order, api_order = orders
    for name in ("hold", "resume"):
        actor = User.objects.get(pk=company.pm.pk)  # fresh, as a request loads it (no cached roles)
        with CaptureQueriesContext(connection) as ctx:
            transition_order(actor=actor, order_id=service_order.id, name=name, comment=c.HOLD_COMMENT)
        out[f"service_{name}"] = {"statements": len(ctx.captured_queries), "by_verb": _verbs(ctx.captured_queries)}
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    version = api_order.version
    for name in ("hold", "resume"):
        body = {"comment": c.HOLD_COMMENT, "version": version} if name == "hold" else {"version": version}
        with CaptureQueriesContext(connection) as ctx:
            response = client.post(f"/api/v1/orders/{api_order.id}/{name}", body, content_type="application/json")
        if response.status_code != 200:
            raise AssertionError(f"API {name}: {response.status_code} {response.content[:500]!r}")
        version = response.json()["version"]
        out[f"api_{name}"] = {
            "statements": len(ctx.captured_queries),
            "by_verb": _verbs(ctx.captured_queries),
            "list": [_shape(q["sql"]) for q in ctx.captured_queries],
        }
    out["service_mean"] = (out["service_hold"]["statements"] + out["service_resume"]["statements"]) / 2
    out["api_mean"] = (out["api_hold"]["statements"] + out["api_resume"]["statements"]) / 2
    out["pgbench"] = 7  # BEGIN, SELECT FOR UPDATE, UPDATE, 3 × INSERT, COMMIT
    return out


def profile(company, orders, token: str, n: int) -> dict:
    """pyinstrument over n API transitions in-process (django.test.Client): where the time goes."""
    from django.test import Client
    from pyinstrument import Profiler

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    state = {o.id: (o.state, o.version) for o in orders}
    profiler = Profiler(interval=0.0005)
    t0 = time.perf_counter()
    profiler.start()
    for i in range(n):
        oid = orders[i % len(orders)].id
        name, body = c.transition_body(*state[oid])
        response = client.post(f"/api/v1/orders/{oid}/{name}", body, content_type="application/json")
        data = response.json()
        state[oid] = (data["state"], data["version"])
    profiler.stop()
    seconds = time.perf_counter() - t0
    session = profiler.last_session
    own: Counter = Counter()
    inclusive: Counter = Counter()

    def walk(frame, stack: frozenset):
        key = f"{frame.function} ({frame.file_path_short}:{frame.line_no})"
        own[key] += frame.total_self_time
        if key not in stack:  # recursion counted once
            inclusive[key] += frame.time
            stack = stack | {key}
        for child in frame.children:
            walk(child, stack)

    root = session.root_frame()
    if root is not None:
        walk(root, frozenset())
    total = root.time if root is not None else 0.0
    ms = 1000 / n

    def top(counter, k, only=None):
        rows = [(key, t) for key, t in counter.most_common() if only is None or only(key)]
        return [
            {"function": key, "ms_per_transition": t * ms, "share": t / total if total else 0} for key, t in rows[:k]
        ]

    return {
        "transitions": n,
        "ms_per_transition": 1000 * seconds / n,
        "top_self": top(own, 25),
        "top_inclusive_eoms": top(inclusive, 30, lambda key: "eoms/" in key),
        "text": profiler.output_text(unicode=True, color=False, show_all=False)[:20000],
    }


# --- pgbench -----------------------------------------------------------------------------------------


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def setup_pgbench_tables(database_url: str, order_ids: list) -> dict:
    """Copies of our tables (same columns, types, defaults, indexes, checks and foreign keys) and of
    the orders; answers the literals the scripts write (a real audit entry's changes and a real
    outbox message's payload of a hold, so the rows are the size of ours)."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        for ours, copy in TABLES.items():
            conn.execute(f"DROP TABLE IF EXISTS {copy} CASCADE")
            conn.execute(f"CREATE TABLE {copy} (LIKE {ours} INCLUDING ALL)")
        fks = conn.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' AND conrelid::regclass::text = ANY(%s)",
            [list(TABLES)],
        ).fetchall()
        for table, name, definition in fks:
            for ours, copy in TABLES.items():
                definition = re.sub(rf"REFERENCES {ours}\(", f"REFERENCES {copy}(", definition)
            conn.execute(f"ALTER TABLE {TABLES[table]} ADD CONSTRAINT pgb_{name[:50]} {definition}")
        columns = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'orders_order' "
                "ORDER BY ordinal_position"
            )
        ]
        # Order n (1..N) gets the id 00000000-0000-4000-8000-<n in hex>, so pgbench can address it.
        select = ", ".join(
            "('00000000-0000-4000-8000-' || lpad(to_hex(k.n), 12, '0'))::uuid" if col == "id" else f"o.{col}"
            for col in columns
        )
        conn.execute(
            f"INSERT INTO pgb_order ({', '.join(columns)}) SELECT {select} FROM orders_order o "
            "JOIN unnest(%s::uuid[]) WITH ORDINALITY AS k(id, n) ON k.id = o.id",
            [[str(i) for i in order_ids]],
        )
        changes, object_repr = conn.execute(
            "SELECT changes::text, object_repr FROM core_auditentry WHERE action = 'orders.hold' "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
        payload = conn.execute(
            "SELECT payload::text FROM core_outboxmessage WHERE event_type = 'orders.order_transitioned' "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
        conn.execute("ANALYZE")
        copied = conn.execute("SELECT count(*) FROM pgb_order").fetchone()[0]
    if copied != len(order_ids):
        raise AssertionError(f"copied {copied} orders for pgbench, expected {len(order_ids)}")
    return {"changes": changes, "payload": payload, "object_repr": object_repr, "foreign_keys": len(fks)}


def pgbench_script(literals: dict) -> str:
    """One transition as pgbench runs it: the order is chosen among the client's own orders (as the
    EOMS clients), locked, moved to the other state of the hold/resume pair with compare-and-set,
    and its history row, audit entry (unsealed, as eoms.core.audit.record appends it) and outbox
    message inserted."""
    changes = _literal(literals["changes"])
    payload = _literal(literals["payload"])
    repr_ = _literal(literals["object_repr"])
    hold = "CASE WHEN :from_state::text = 'IN_EXECUTION'"
    lines = [
        r"\set n 1 + :client_id + :clients * random(0, :per - 1)",
        "BEGIN;",
        "SELECT id AS oid, state AS from_state, version AS from_version FROM pgb_order "
        "WHERE id = ('00000000-0000-4000-8000-' || lpad(to_hex(:n::int), 12, '0'))::uuid FOR UPDATE \\gset",
        f"UPDATE pgb_order SET state = {hold} THEN 'ON_HOLD' ELSE 'IN_EXECUTION' END, "
        f"stage_owner_id = {hold} THEN :pm::uuid ELSE :engineer::uuid END, stage_entered_at = now(), "
        f"stage_deadline = now() + {hold} THEN interval '30 days' ELSE interval '120 days' END, "
        f"held_from = {hold} THEN 'IN_EXECUTION' ELSE held_from END, updated_by_id = :pm::uuid, "
        "version = version + 1, updated_at = now() "
        "WHERE id = :oid::uuid AND version = :from_version::int AND state = :from_state::text;",
        "INSERT INTO pgb_history (order_id, transition, from_state, to_state, actor_id, at, comment) "
        f"VALUES (:oid::uuid, {hold} THEN 'hold' ELSE 'resume' END, :from_state, "
        f"{hold} THEN 'ON_HOLD' ELSE 'IN_EXECUTION' END, :pm, now(), "
        f"{hold} THEN {_literal(c.HOLD_COMMENT)} ELSE '' END);",
    ]
    lines.append(
        "INSERT INTO pgb_audit (seq, at, actor_id, actor_repr, ip, request_id, action, object_type, object_id, "
        "object_repr, changes, prev_hash, hash) VALUES (NULL, now(), :pm, 'bench-pm', '127.0.0.1', "
        f"md5(random()::text), {hold} THEN 'orders.hold' ELSE 'orders.resume' END, "
        f"'orders.order', :oid, {repr_}, {changes}::jsonb, '', '');"
    )
    lines += [
        "INSERT INTO pgb_outbox (message_id, event_type, event_version, aggregate_type, aggregate_id, payload, "
        "actor_id, request_id, created_at, sent_at, attempts, next_attempt_at, last_error) VALUES ("
        "gen_random_uuid(), 'orders.order_transitioned', 1, 'orders.order', :oid, "
        f"{payload}::jsonb, :pm, md5(random()::text), now(), NULL, 0, NULL, '');",
        "COMMIT;",
    ]
    return "\n".join(lines) + "\n"


def run_pgbench(
    pgbench: str,
    database_url: str,
    script: Path,
    *,
    clients: int,
    orders: int,
    seconds: float,
    variables: dict,
    meter: c.CpuMeter,
    log_dir: str,
) -> dict:
    per = orders // clients
    prefix = Path(log_dir) / f"pgb-{script.stem}-{clients}-{time.monotonic_ns()}"
    cmd = [pgbench, "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(clients, os.cpu_count() or 1))]
    cmd += ["-T", str(max(1, round(seconds))), "-f", str(script), "-l", "--log-prefix", str(prefix)]
    cmd += ["-D", f"clients={clients}", "-D", f"per={per}"]
    for key, value in variables.items():
        cmd += ["-D", f"{key}={value}"]
    cmd.append(database_url)
    meter.start()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=False)
    cpu = meter.stop()
    out = done.stdout + done.stderr
    latencies = []
    for path in Path(log_dir).glob(prefix.name + "*"):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[2].isdigit():
                latencies.append(int(parts[2]) / 1000)
        path.unlink()
    latencies.sort()
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    if done.returncode != 0 or not tps:
        return {"error": f"pgbench exit {done.returncode}", "output": out[-3000:]}
    n = int(processed.group(1)) if processed else len(latencies)
    nfailed = int(failed.group(1)) if failed else 0
    return {
        "clients": clients,
        "transactions": n,
        "tps": float(tps.group(1)),
        "p50_ms": c.percentile(latencies, 50),
        "p99_ms": c.percentile(latencies, 99),
        "error_rate": nfailed / (n + nfailed) if n + nfailed else 0.0,
        "conflict_rate": 0.0,  # the row is locked first: a version check cannot fail
        **cpu,
        "cpu_ms_per_transaction": {
            "pgbench": 1000 * cpu["pgbench_cpu_s"] / n if n else None,
            "postgres": 1000 * cpu["postgres_cpu_s"] / n if n else None,
        },
    }


# --- EOMS over HTTP ----------------------------------------------------------------------------------


class Orders:
    """The benchmark's orders and what the clients last read of each (state, version). Each client
    owns its own orders (order i belongs to client i mod C), so an order is never moved by two
    clients at once and a 409 means something else moved it."""

    def __init__(self, orders):
        self.ids = [str(o.id) for o in orders]
        self.seen = {str(o.id): (o.state, o.version) for o in orders}

    def of_client(self, i: int, clients: int) -> list[str]:
        return self.ids[i::clients]


def run_eoms(
    server: c.Server, token: str, orders: Orders, *, clients: int, transitions: int, meter: c.CpuMeter
) -> dict:
    each = max(1, transitions // clients)
    barrier = threading.Barrier(clients + 1)
    lock = threading.Lock()
    latencies: list[float] = []
    tally: Counter = Counter()
    messages: Counter = Counter()
    reconnects = [0]

    def client(i: int):
        mine = orders.of_client(i, clients)
        http = c.Http(server.port, {"Authorization": f"Bearer {token}", "Accept": "application/json"})
        lat, local, msgs = [], Counter(), Counter()
        try:
            barrier.wait()
            for k in range(each):
                oid = mine[k % len(mine)]
                name, body = c.transition_body(*orders.seen[oid])
                t = time.perf_counter()
                try:
                    status, data, _ = http.request("POST", f"/api/v1/orders/{oid}/{name}", body)
                except OSError as exc:
                    local["error"] += 1
                    msgs[f"{type(exc).__name__}: {exc}"[:120]] += 1
                    continue
                lat.append(1000 * (time.perf_counter() - t))
                if status == 200:
                    local["ok"] += 1
                    doc = json.loads(data)
                    orders.seen[oid] = (doc["state"], doc["version"])
                    continue
                local["conflict" if status == 409 else "error"] += 1
                msgs[f"{status} {data[:160].decode(errors='replace')}"] += 1
                st, data, _ = http.request("GET", f"/api/v1/orders/{oid}")  # read it again, go on
                if st == 200:
                    doc = json.loads(data)
                    orders.seen[oid] = (doc["state"], doc["version"])
        finally:
            http.close()
            with lock:
                latencies.extend(lat)
                tally.update(local)
                messages.update(msgs)
                reconnects[0] += http.reconnects

    threads = [threading.Thread(target=client, args=(i,), name=f"client-{i}") for i in range(clients)]
    for t in threads:
        t.start()
    meter.start()
    barrier.wait()
    for t in threads:
        t.join()
    cpu = meter.stop()
    latencies.sort()
    attempts = each * clients
    ok = tally["ok"]
    return {
        "clients": clients,
        "transitions": attempts,
        "ok": ok,
        "tps": ok / cpu["wall_s"] if cpu["wall_s"] else 0.0,
        "p50_ms": c.percentile(latencies, 50),
        "p99_ms": c.percentile(latencies, 99),
        "error_rate": tally["error"] / attempts,
        "conflict_rate": tally["conflict"] / attempts,
        "errors": dict(messages.most_common(5)),
        **cpu,
        "cpu_ms_per_transaction": {
            "load_generator": 1000 * cpu["load_generator_cpu_s"] / attempts,
            "eoms_workers": 1000 * cpu["app_server_cpu_s"] / attempts,
            "postgres": 1000 * cpu["postgres_cpu_s"] / attempts,
        },
        # The load generator's share of all CPU spent: small means it is not what limits the rate.
        "load_generator_cpu_share": cpu["load_generator_cpu_s"]
        / max(1e-9, cpu["load_generator_cpu_s"] + cpu["app_server_cpu_s"] + cpu["postgres_cpu_s"]),
        "load_generator_core_use": cpu["load_generator_cpu_s"] / cpu["wall_s"] if cpu["wall_s"] else 0.0,
        "reconnects": reconnects[0],
    }


# --- checks after the runs ---------------------------------------------------------------------------


def check_records(order_ids: list[str], ok_total: int, before: dict) -> dict:
    """Every successful transition left one history row, one audit entry and one outbox message;
    the entries are sealed (timed) and the audit chain verifies from #1."""
    from eoms.core.audit import seal, verify_chain

    now = _counts(order_ids)
    added = {k: now[k] - before.get(k, 0) for k in now}
    sealing = c.time_seal(seal)
    t0 = time.perf_counter()
    problem = verify_chain()
    return {
        "successful_transitions": ok_total,
        "rows_added": added,
        "one_each": all(v == ok_total for v in added.values()),
        "audit_chain": "intact" if problem is None else str(problem),
        "verify_s": time.perf_counter() - t0,
        "sealing": sealing,
    }


def _counts(order_ids: list[str]) -> dict:
    from eoms.core.models import AuditEntry, OutboxMessage
    from eoms.orders.models import OrderHistory

    return {
        "history": OrderHistory.objects.filter(order_id__in=order_ids, transition__in=["hold", "resume"]).count(),
        "audit": AuditEntry.objects.filter(
            action__in=["orders.hold", "orders.resume"], object_id__in=order_ids
        ).count(),
        "outbox": OutboxMessage.objects.filter(
            event_type="orders.order_transitioned",
            aggregate_id__in=order_ids,
            payload__transition__in=["hold", "resume"],
        ).count(),
    }


# --- main --------------------------------------------------------------------------------------------


def benchmark(args) -> dict:
    pgbench = c.pgbench_path()
    if pgbench is None:
        raise SystemExit(c.PGBENCH_MISSING)
    load_before = os.getloadavg()
    with (
        c.temp_data_dir("eoms-bench-transition-") as data_dir,
        c.throwaway_database(args.pg, "transition") as (
            url,
            dbname,
        ),
    ):
        env = c.bench_env(data_dir, url)
        c.setup_django(env, fast_hasher=True)
        from django.db import connection

        migrate_s = c.migrate()
        t0 = time.perf_counter()
        company = c.Company()
        token = company.token()
        bench_orders = company.orders_in_execution(args.orders)
        extra = company.orders_in_execution(2 + (4 if args.profile else 0), start=args.orders)
        setup_s = time.perf_counter() - t0
        statements = count_statements(company, extra[:2], token)
        profiled = profile(company, extra[2:], token, args.profile) if args.profile else None
        literals = setup_pgbench_tables(url, [o.id for o in bench_orders])
        scripts_dir = tempfile.mkdtemp(prefix="pgb-", dir=data_dir)
        script_texts = {"pgbench": pgbench_script(literals)}
        script = Path(scripts_dir) / "pgbench.sql"
        script.write_text(script_texts["pgbench"], encoding="utf-8")
        variables = {"pm": str(company.pm.pk), "engineer": str(company.engineer.pk)}
        orders = Orders(bench_orders)
        order_ids = orders.ids
        before = _counts(order_ids)
        database = {"name": dbname, "server": c.pg_version(args.pg), **c.pg_settings(url)}
        connection.close()

        results: dict[str, dict[int, list]] = {"eoms": {}, "pgbench": {}}
        memory_samples = []
        with c.Server(env, data_dir, workers=args.workers, threads=args.threads) as server:
            workers = server.worker_pids()
            meter = c.CpuMeter(server.worker_pids, lambda: c.postgres_backends(dbname))
            # Warm-up: every worker answers a few requests (imports, templates, translations, connections).
            warm = run_eoms(
                server, token, orders, clients=max(args.clients), transitions=4 * max(args.clients), meter=meter
            )
            for r in range(args.runs):
                for clients in args.clients:
                    # Interleaved, so a busy neighbour on the machine slows every contestant alike.
                    res = run_eoms(server, token, orders, clients=clients, transitions=args.transitions, meter=meter)
                    results["eoms"].setdefault(clients, []).append(res)
                    memory_samples.append(server.worker_memory())
                    res = run_pgbench(
                        pgbench,
                        url,
                        script,
                        clients=clients,
                        orders=len(order_ids),
                        seconds=args.pgbench_seconds,
                        variables=variables,
                        meter=meter,
                        log_dir=data_dir,
                    )
                    results["pgbench"].setdefault(clients, []).append(res)
                    if "error" in res:
                        print(f"pgbench: {res}", file=sys.stderr)
                    print(
                        f"run {r + 1}/{args.runs}, {clients} clients: "
                        + ", ".join(f"{k} {v[clients][-1].get('tps', 0):.1f} tps" for k, v in results.items()),
                        file=sys.stderr,
                    )
            memory = server.worker_memory()
            worker_count = len(server.worker_pids())
        # The warm-up's transitions are in the records too.
        ok_total = warm["ok"] + sum(r["ok"] for runs in results["eoms"].values() for r in runs)
        records = check_records(order_ids, ok_total, before)
        connection.close()

    summary = {}
    for key, by_clients in results.items():
        summary[key] = {str(k): c.median_of(v) for k, v in by_clients.items()}
    ratios = {}
    for clients in args.clients:
        e = summary["eoms"][str(clients)]["tps"]
        p = summary["pgbench"][str(clients)].get("tps")
        ratios[str(clients)] = e / p if p else None
    # Each run's EOMS and pgbench ran back to back: the median of the per-run ratios is steadier on
    # a shared machine than the ratio of the medians (both are given).
    paired = {
        str(n): statistics.median(
            e["tps"] / p["tps"] for e, p in zip(results["eoms"][n], results["pgbench"][n], strict=True) if p.get("tps")
        )
        for n in args.clients
        if any(p.get("tps") for p in results["pgbench"][n])
    }
    peak = max((m["peak_rss_mb"] for m in memory.values()), default=None)
    return {
        "benchmark": "transition",
        "machine": c.machine({"loadavg_before": load_before, "pgbench": pgbench}),
        "settings": {
            "clients": args.clients,
            "runs": args.runs,
            "transitions_per_run": args.transitions,
            "orders": args.orders,
            "pgbench_seconds": args.pgbench_seconds,
            "server": {
                "command": "eoms serve",
                "workers": worker_count,
                "worker_pids_at_start": len(workers),
                "threads": args.threads,
                "worker_class": "gthread" if args.threads > 1 else "sync",
                "mode": "production",
                "conn_max_age_s": 60,
            },
            "database": database,
            "transitions": "POST /api/v1/orders/{id}/hold (comment) and /resume in turn, with the version read",
            "auth": "Authorization: Bearer <personal API token of the project manager>",
            "pgbench": "-M prepared, -c C -j min(C, CPUs), -T seconds, tables copied with LIKE ... INCLUDING ALL",
            "migrate_s": migrate_s,
            "setup_s": setup_s,
        },
        "sql_statements": statements,
        "eoms": summary["eoms"],
        "pgbench": summary["pgbench"],
        "ratio": paired,
        "ratio_of_medians": ratios,
        "worker_memory_mb": {
            "peak_rss": peak,
            "by_worker_at_end": list(memory.values()),
            "rss_after_each_run": [sorted(round(m["rss_mb"], 1) for m in s.values()) for s in memory_samples],
        },
        "records": records,
        "profile": profiled,
        "targets": {
            "ratio_at_least_25_percent": {k: (v is not None and v >= TARGET_RATIO) for k, v in paired.items()},
            "records_one_each": records["one_each"],
            "audit_chain_intact": records["audit_chain"] == "intact",
        },
        "pgbench_scripts": script_texts if args.show_scripts else None,
    }


def summary(result: dict) -> str:
    lines = []
    for clients in result["settings"]["clients"]:
        k = str(clients)
        e, p = result["eoms"][k], result["pgbench"][k]
        ratio = result["ratio"].get(k)
        ratio_text = f"{ratio:.3f}" if ratio is not None else "n/a"
        lines.append(
            f"{clients:2d} clients: EOMS {e['tps']:7.1f} tps (p50 {e['p50_ms']:.1f} ms, p99 {e['p99_ms']:.1f} ms, "
            f"409 {e['conflict_rate']:.1%}, errors {e['error_rate']:.1%}, "
            f"generator {e['load_generator_cpu_share']:.0%} of CPU) | pgbench {p.get('tps', 0):7.1f} tps | "
            f"EOMS/pgbench {ratio_text}"
        )
    s = result["sql_statements"]
    lines.append(
        f"SQL statements per transition: service {s['service_mean']:.1f}, API request {s['api_mean']:.1f}, "
        f"pgbench {s['pgbench']}"
    )
    lines.append(c.sealing_line(result["records"]["sealing"]))
    lines.append(f"worker peak RSS {result['worker_memory_mb']['peak_rss']:.1f} MB; records {result['records']}")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="CI smoke: clients 1,4, 1 run, 24 transitions, 2 s pgbench"
    )
    parser.add_argument("--clients", default=None, help="comma-separated client counts (default 1,4,16)")
    parser.add_argument("--runs", type=int, default=None, help="runs, the median is reported (default 3; --quick 1)")
    parser.add_argument(
        "--transitions",
        type=int,
        default=None,
        help="EOMS transitions per run and client count (default 400; --quick 24)",
    )
    parser.add_argument("--orders", type=int, default=None, help="orders cycled (default 320; --quick 32)")
    parser.add_argument("--pgbench-seconds", type=float, default=None, help="pgbench duration (default 10; --quick 2)")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: eoms serve's own)")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (>1: gthread workers)")
    parser.add_argument(
        "--pg",
        default=os.environ.get("BENCH_PG_URL", c.DEFAULT_PG),
        help="PostgreSQL server URL without a database name (default %(default)s)",
    )
    parser.add_argument("--profile", type=int, default=0, help="also profile N in-process API transitions")
    parser.add_argument("--show-scripts", action="store_true", help="put the pgbench scripts in the JSON")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    args.clients = [int(x) for x in (args.clients or ("1,4" if args.quick else "1,4,16")).split(",")]
    args.runs = args.runs or (1 if args.quick else 3)
    args.transitions = args.transitions or (24 if args.quick else 400)
    args.orders = args.orders or (32 if args.quick else 320)
    args.pgbench_seconds = args.pgbench_seconds or (2 if args.quick else 10)
    if min(args.clients) < 1 or args.runs < 1 or args.transitions < 1:
        parser.error("--clients, --runs and --transitions must be positive")
    if args.orders < max(args.clients):
        parser.error("--orders must be at least the largest client count")
    return args


def failures(result: dict) -> list[str]:
    """What went wrong (never a speed figure): a non-200 answer, a pgbench error, a transition
    without its records, a broken audit chain. Any of these makes the exit status 1."""
    out = []
    for n, e in result["eoms"].items():
        if any(r["error_rate"] or r["conflict_rate"] for r in e["runs"]):
            out.append(f"eoms at {n} clients: errors {e['errors']}")
    for n, p in result["pgbench"].items():
        bad = [r for r in p["runs"] if "error" in r or r.get("error_rate")]
        if bad:
            out.append(f"pgbench at {n} clients: {bad[0].get('error') or 'failed transactions'}")
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
