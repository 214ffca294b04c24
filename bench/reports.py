"""Reports at a million orders (issue 6, benchmark 3): the order list with filters in keyset pages,
the dashboard's figures and stage cycle times through the real HTTP API under `eoms serve`, against
the raw SQL of the same queries on the same PostgreSQL in the same run.

One run: a throwaway database, migrated; users, a customer and 20 projects made through the
services; then N orders (default 1,000,000) with about 5 history rows each written by two
INSERT … SELECT FROM generate_series statements (not the ORM row by row), the order summary rebuilt
(`eoms reports rebuild-summary`'s code) and the tables ANALYZEd. Each scenario is measured with 1, 4
and 16 concurrent clients (median of 3 runs): the API (requests over keep-alive connections, a
personal API token) and the raw SQL (the statements the API's selectors run, taken from the ORM and
run over psycopg connections, one per client). See bench/README.md, "reports"."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

PROJECTS = 20
REGIONS = ("east", "north", "south", "central", "southwest", "northwest", "northeast")
KINDS = ("construction", "installation", "design", "procurement", "consulting", "maintenance")
# The main flow: an order with k history rows is in PATH[k - 1]; k is spread evenly over 1..9.
PATH = (
    ("create", "INITIATED", 5),
    ("start_quotation", "QUOTING", 10),
    ("submit", "PENDING_APPROVAL", 3),
    ("approve", "APPROVED", 7),
    ("sign", "SIGNED", 7),
    ("start_execution", "IN_EXECUTION", 120),
    ("request_acceptance", "PENDING_ACCEPTANCE", 14),
    ("accept", "ACCEPTED", 30),
    ("start_settlement", "SETTLING", 30),
)
SPAN_DAYS = 730  # orders created over the two years before the run
TARGET_LIST_P99_MS = 50.0
TARGET_DASHBOARD_MS = 1000.0

# --- the data ----------------------------------------------------------------------------------------

_SERIES = """
    SELECT i, k, c, c + (k - 1) * step * interval '1 second' AS e, step
    FROM (
        SELECT i, 1 + (i::bigint * 2654435761 %% 9)::int AS k,
               %(base)s::timestamptz + (i * %(spacing)s::float8) * interval '1 second' AS c,
               3600 * (1 + i %% 97) AS step
        FROM generate_series(%(first)s::int, %(last)s::int) AS i
    ) s
"""

ORDERS_SQL = (
    """
INSERT INTO orders_order (id, created_at, updated_at, version, number, title, customer_id, project_id, kind, region,
    contract_amount, estimated_cost, tax_rate, description, parent_id, level, state, stage_owner_id,
    stage_entered_at, stage_deadline, held_from, cancel_reason, created_by_id, updated_by_id)
SELECT ('01900000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, c, e, k,
    'BENCH-' || lpad(i::text, 9, '0'), '基准订单 ' || i, %(customer)s,
    (%(projects)s::uuid[])[1 + i %% %(n_projects)s::int], (%(kinds)s::text[])[1 + (i / 7) %% 6],
    (%(regions)s::text[])[1 + i %% %(n_projects)s::int],
    (1000 + (i::bigint * 7919) %% 9999000) + (i %% 100) / 100.0, NULL, 0.09, '', NULL, 1,
    (%(states)s::text[])[k], %(pm)s::uuid, e, e + (%(days)s::int[])[k] * interval '1 day', '', '', %(admin)s, %(admin)s
FROM ("""
    + _SERIES
    + ") t"
)

HISTORY_SQL = (
    """
INSERT INTO orders_orderhistory (order_id, transition, from_state, to_state, actor_id, at, comment)
SELECT ('01900000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, (%(transitions)s::text[])[j],
    coalesce((%(states)s::text[])[j - 1], ''),
    (%(states)s::text[])[j], %(admin)s, c + (j - 1) * step * interval '1 second', ''
FROM ("""
    + _SERIES
    + ") t, generate_series(1, k) AS j"
)


def make_projects(company) -> list:
    """PROJECTS projects of the company's customer, through the services, in every region; the first
    is the company's own (its PM's only project)."""
    from eoms.masterdata.services import create_project

    project_type = company.project.project_type
    projects = [company.project]
    for n in range(1, PROJECTS):
        projects.append(
            create_project(
                actor=company.admin,
                code=f"BENCH-{n + 1:03d}",
                name=f"基准测试工程 {n + 1}",
                customer=company.project.customer,
                project_type=project_type,
                region=REGIONS[n % len(REGIONS)],
                manager=None,
            )
        )
    return projects


def generate(url: str, company, projects, orders: int) -> dict:
    """Write `orders` orders and their history with INSERT … SELECT FROM generate_series, in two
    connections at once (each a half), as a bulk load is done: the two tables' secondary indexes and
    foreign keys are dropped first and made again after (the foreign keys validated), then ANALYZE.
    Order ids are UUIDs in creation order (as the UUIDv7 ids EOMS gives). Answers timings and counts."""
    import psycopg

    params = {
        "customer": company.project.customer_id,
        "projects": [str(p.id) for p in projects],
        "regions": [p.region for p in projects],
        "n_projects": len(projects),
        "kinds": list(KINDS),
        "states": [s for _, s, _ in PATH],
        "transitions": [t for t, _, _ in PATH],
        "days": [d for _, _, d in PATH],
        "pm": company.pm.pk,
        "admin": company.admin.pk,
        "spacing": SPAN_DAYS * 86400.0 / orders,
    }
    tables = ("orders_order", "orders_orderhistory")
    out = {"orders": orders}
    t_all = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        params["base"] = conn.execute(f"SELECT now() - interval '{SPAN_DAYS} days'").fetchone()[0]
        indexes = conn.execute(
            """SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) AND indexname NOT IN
               (SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u'))""",
            [list(tables)],
        ).fetchall()
        foreign = conn.execute(
            """SELECT conname, conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint
               WHERE contype = 'f' AND conrelid::regclass::text = ANY(%s)""",
            [list(tables)],
        ).fetchall()
        t0 = time.perf_counter()
        for name, table, _ in foreign:
            conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        out["drop_s"] = time.perf_counter() - t0
    half = (orders + 1) // 2
    for table, sql in (("orders", ORDERS_SQL), ("history", HISTORY_SQL)):
        t0 = time.perf_counter()
        _parallel(
            url, [(sql, {**params, "first": 1, "last": half}), (sql, {**params, "first": half + 1, "last": orders})]
        )
        out[f"{table}_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    _parallel(url, [(definition, None) for _, definition in indexes])
    out["indexes_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    _parallel(url, [(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {d}', None) for name, table, d in foreign])
    out["foreign_keys_s"] = time.perf_counter() - t0
    with psycopg.connect(url, autocommit=True) as conn:
        t0 = time.perf_counter()
        conn.execute("ANALYZE orders_order")
        conn.execute("ANALYZE orders_orderhistory")
        out["analyze_s"] = time.perf_counter() - t0
        out["generate_s"] = time.perf_counter() - t_all
        out["history_rows"] = conn.execute("SELECT count(*) FROM orders_orderhistory").fetchone()[0]
        out["orders_rows"] = conn.execute("SELECT count(*) FROM orders_order").fetchone()[0]
        out["database_mb"] = conn.execute("SELECT pg_database_size(current_database()) / 1048576.0").fetchone()[0]
    out["indexes_rebuilt"] = len(indexes)
    out["foreign_keys_revalidated"] = len(foreign)
    return out


def _parallel(url: str, statements: list, connections: int = 2) -> None:
    """Run the statements over `connections` connections at once (each takes the next one left)."""
    import psycopg

    todo = list(statements)
    lock = threading.Lock()
    failed = []

    def worker():
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET synchronous_commit = off")
            conn.execute("SET maintenance_work_mem = '256MB'")
            while True:
                with lock:
                    if not todo or failed:
                        return
                    sql, params = todo.pop(0)
                try:
                    conn.execute(sql, params)
                except Exception as exc:
                    failed.append(exc)
                    return

    threads = [threading.Thread(target=worker) for _ in range(min(connections, len(todo)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        raise failed[0]


def rebuild_summary() -> dict:
    from django.db import connection

    from eoms.orders.services import rebuild_order_summary

    t0 = time.perf_counter()
    buckets = rebuild_order_summary()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE orders_ordersummary")
    return {"buckets": buckets, "rebuild_s": time.perf_counter() - t0}


# --- the scenarios -----------------------------------------------------------------------------------


def scenarios(company, quick: bool) -> list[dict]:
    """What is measured: a path of the API (list pages follow next_cursor) as admin or PM, and how
    many keyset pages one request of the scenario walks."""
    from django.utils import timezone

    month_ago = (timezone.localdate() - timezone.timedelta(days=30)).isoformat()
    week = (timezone.localdate() - timezone.timedelta(days=7)).isoformat()
    lists = [
        ("list_all", "admin", {}),
        ("list_state", "admin", {"state": "IN_EXECUTION"}),
        ("list_region_kind", "admin", {"region": "east", "kind": "design"}),
        ("list_amount_range", "admin", {"amount_min": "100000", "amount_max": "200000", "ordering": "-amount"}),
        ("list_created_range", "admin", {"created_from": month_ago, "created_to": week}),
        ("list_overdue", "admin", {"overdue": "true", "ordering": "deadline"}),
        ("list_project", "admin", {"project": str(company.project.id), "state": "SIGNED"}),
        ("list_pm_scope", "pm", {}),
    ]
    out = [
        {"name": name, "kind": "list", "who": who, "path": "/api/v1/orders", "params": params, "pages": 5}
        for name, who, params in lists
    ]
    out += [
        {"name": "dashboard", "kind": "dashboard", "who": "admin", "path": "/api/v1/reports/dashboard", "params": {}},
        {"name": "dashboard_pm", "kind": "dashboard", "who": "pm", "path": "/api/v1/reports/dashboard", "params": {}},
        {
            "name": "cycle_times",
            "kind": "dashboard",
            "who": "admin",
            "path": "/api/v1/reports/cycle-times",
            "params": {},
        },
        {
            "name": "dashboard_live",
            "kind": "dashboard",
            "who": "admin",
            "path": "/api/v1/reports/dashboard",
            "params": {"source": "live"},
            "heavy": True,
        },
        {
            "name": "cycle_times_live",
            "kind": "dashboard",
            "who": "admin",
            "path": "/api/v1/reports/cycle-times",
            "params": {"source": "live"},
            "heavy": True,
        },
    ]
    return out


def raw_statements(scenario: dict, actor, cursors: list[str]) -> list[list[str]]:
    """The SQL the scenario's selectors run (as the database receives it), per request: for a list,
    one statement per page (the first, then after each cursor the API answered); for the figures,
    the statements the reports endpoint runs. Taken from the ORM in this process."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from eoms.orders import selectors

    p = scenario["params"]
    if scenario["kind"] == "list":
        filters = selectors.OrderFilters(
            state=[p["state"]] if "state" in p else None,
            project=p.get("project"),
            region=p.get("region"),
            kind=p.get("kind"),
            amount_min=p.get("amount_min"),
            amount_max=p.get("amount_max"),
            created_from=_date(p.get("created_from")),
            created_to=_date(p.get("created_to")),
            overdue=True if p.get("overdue") == "true" else None,
            ordering=p.get("ordering", "-created"),
        )
        qs = selectors.list_orders(actor=actor, filters=filters)
        statements = []
        for cursor in ["", *cursors]:
            page = selectors.after_cursor(qs, filters.ordering, cursor) if cursor else qs
            with CaptureQueriesContext(connection) as captured:
                list(page[:51])
            statements.append(captured[-1]["sql"])
        return [statements]
    live = p.get("source") == "live"
    with CaptureQueriesContext(connection) as captured:
        if scenario["path"].endswith("/dashboard"):
            groupings = [("state",), ("month", "state"), ("region", "state"), ("kind", "state")]
            selectors.order_figures(actor=actor, groupings=groupings, live=live)
        else:
            selectors.stage_times(actor=actor, live=live)
    # The memberships the scope is read from are the API's work too: kept, as the API runs them.
    return [[q["sql"] for q in captured]]


def _date(value):
    from datetime import date

    return date.fromisoformat(value) if value else None


class InProcess:
    """c.Http's interface over django.test.Client in this process (--in-process: no `eoms serve`)."""

    def __init__(self, headers: dict):
        from django.test import Client

        self.client = Client(HTTP_AUTHORIZATION=headers["Authorization"])
        self.reconnects = 0

    def request(self, method: str, path: str, body=None, headers=None):
        response = self.client.get(path)
        return response.status_code, response.content, dict(response.items())

    def close(self):
        pass


class NoServer:
    port = None

    def worker_memory(self):
        return {}

    def worker_pids(self):
        return []


def walk_api(http, scenario: dict) -> tuple[int, list[str], int]:
    """One request of the scenario through the API: for a list, `pages` keyset pages from an empty
    cursor on (answers the cursors met); the number of results read."""
    if scenario["kind"] != "list":
        status, body, _ = http.request("GET", f"{scenario['path']}?{urlencode(scenario['params'])}")
        if status != 200:
            raise RuntimeError(f"{scenario['name']}: {status} {body[:300]!r}")
        return 1, [], 1
    cursor, cursors, rows = "", [], 0
    for _ in range(scenario["pages"]):
        query = urlencode({**scenario["params"], "cursor": cursor})
        status, body, _ = http.request("GET", f"{scenario['path']}?{query}")
        if status != 200:
            raise RuntimeError(f"{scenario['name']}: {status} {body[:300]!r}")
        data = json.loads(body)
        rows += len(data["results"])
        cursor = data["next_cursor"]
        if not cursor:
            break
        cursors.append(cursor)
    return scenario["pages"], cursors, rows


def measure(kind: str, scenario: dict, clients: int, requests: int, *, port=None, tokens=None, url=None, raw=None):
    """`clients` threads, each doing `requests` requests of the scenario (API: through the server;
    raw: its statements over a psycopg connection of its own), started together. Latency per page
    (a list request's pages are timed one by one) or per dashboard request."""
    import psycopg

    barrier = threading.Barrier(clients + 1)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def api_client():
        auth = {"Authorization": f"Bearer {tokens[scenario['who']]}"}
        http = InProcess(auth) if port is None else c.Http(port, auth)
        own = []
        try:
            barrier.wait()
            for _ in range(requests):
                if scenario["kind"] == "list":
                    cursor = ""
                    for _page in range(scenario["pages"]):
                        t0 = time.perf_counter()
                        query = urlencode({**scenario["params"], "cursor": cursor})
                        status, body, _ = http.request("GET", f"{scenario['path']}?{query}")
                        own.append(time.perf_counter() - t0)
                        if status != 200:
                            raise RuntimeError(f"{status} {body[:200]!r}")
                        cursor = json.loads(body)["next_cursor"]
                        if not cursor:
                            break
                else:
                    t0 = time.perf_counter()
                    status, body, _ = http.request("GET", f"{scenario['path']}?{urlencode(scenario['params'])}")
                    own.append(time.perf_counter() - t0)
                    if status != 200:
                        raise RuntimeError(f"{status} {body[:200]!r}")
        except Exception as exc:  # counted, shown in the JSON
            with lock:
                errors.append(str(exc)[:300])
        finally:
            http.close()
            with lock:
                latencies.extend(own)

    def raw_client():
        own = []
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                barrier.wait()
                for _ in range(requests):
                    for statements in raw:
                        if scenario["kind"] == "list":
                            for sql in statements:
                                t0 = time.perf_counter()
                                conn.execute(sql).fetchall()
                                own.append(time.perf_counter() - t0)
                        else:
                            t0 = time.perf_counter()
                            for sql in statements:
                                conn.execute(sql).fetchall()
                            own.append(time.perf_counter() - t0)
        except Exception as exc:
            with lock:
                errors.append(str(exc)[:300])
        finally:
            with lock:
                latencies.extend(own)

    threads = [threading.Thread(target=api_client if kind == "api" else raw_client) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    latencies.sort()
    return {
        "clients": clients,
        "requests": len(latencies),
        "per_s": len(latencies) / wall if wall else 0.0,
        "p50_ms": 1000 * (c.percentile(latencies, 50) or 0),
        "p99_ms": 1000 * (c.percentile(latencies, 99) or 0),
        "max_ms": 1000 * (latencies[-1] if latencies else 0),
        "errors": len(errors),
        "error_messages": errors[:3],
    }


# --- main --------------------------------------------------------------------------------------------


def benchmark(args) -> dict:
    load_before = os.getloadavg()
    with (
        c.temp_data_dir("eoms-bench-reports-") as data_dir,
        c.throwaway_database(args.pg, "reports") as (url, dbname),
    ):
        env = c.bench_env(data_dir, url)
        c.setup_django(env, fast_hasher=True)
        from django.db import connection

        from eoms.accounts.selectors import get_active_user

        migrate_s = c.migrate()
        company = c.Company()
        projects = make_projects(company)
        generated = generate(url, company, projects, args.orders)
        print(
            f"generated {generated['orders_rows']} orders, {generated['history_rows']} history rows "
            f"in {generated['generate_s']:.1f} s",
            file=sys.stderr,
        )
        summary_build = rebuild_summary()
        tokens = {"admin": company.token(company.admin), "pm": company.token(company.pm)}
        actors = {"admin": get_active_user(company.admin.pk), "pm": get_active_user(company.pm.pk)}
        database = {"name": dbname, "server": c.pg_version(args.pg), **c.pg_settings(url)}
        plans = explain_lists(company, actors)
        profiled = profile(tokens[args.profile_as], args.profile, args.profile_path) if args.profile else None
        connection.close()

        results: dict[str, dict] = {}
        with (
            contextlib.nullcontext(NoServer())
            if args.in_process
            else c.Server(env, data_dir, workers=args.workers) as server
        ):
            todo = [s for s in scenarios(company, args.quick) if not args.only or s["name"] in args.only]
            # Warm-up, and the cursors each list walks (the raw SQL runs the same pages).
            raw = {}
            for s in todo:
                auth = {"Authorization": f"Bearer {tokens[s['who']]}"}
                http = InProcess(auth) if args.in_process else c.Http(server.port, auth)
                _, cursors, _ = walk_api(http, s)
                http.close()
                raw[s["name"]] = raw_statements(s, actors[s["who"]], cursors)
            if not args.in_process:
                connection.close()
            for run in range(args.runs):
                for s in todo:
                    for clients in [1] if s.get("heavy") else args.clients:
                        # About the same number of samples (pages, or dashboard requests) at each client count.
                        per_request = s.get("pages", 1)
                        samples = args.samples if s["kind"] == "list" else max(1, args.samples // 4)
                        requests = max(1, -(-samples // (clients * per_request)))
                        if s.get("heavy"):
                            requests = args.heavy_requests
                        entry = results.setdefault(s["name"], {"api": {}, "raw": {}})
                        for kind in ("api", "raw"):  # interleaved: a busy neighbour slows both alike
                            res = measure(
                                kind, s, clients, requests, port=server.port, tokens=tokens, url=url, raw=raw[s["name"]]
                            )
                            entry[kind].setdefault(str(clients), []).append(res)
                        a, r = entry["api"][str(clients)][-1], entry["raw"][str(clients)][-1]
                        print(
                            f"run {run + 1}/{args.runs} {s['name']:<20} {clients:2d} clients: API p50 "
                            f"{a['p50_ms']:7.1f} p99 {a['p99_ms']:7.1f} ms | raw p50 {r['p50_ms']:7.1f} "
                            f"p99 {r['p99_ms']:7.1f} ms",
                            file=sys.stderr,
                        )
            memory = server.worker_memory()
            workers = len(server.worker_pids())
            statements = {name: [len(x) for x in stmts] for name, stmts in raw.items()}
            sample_sql = {name: stmts[0][:2] for name, stmts in raw.items()} if args.show_sql else None

    figures = {}
    for name, entry in results.items():
        figures[name] = {kind: {n: c.median_of(runs) for n, runs in by.items()} for kind, by in entry.items()}
    return {
        "benchmark": "reports",
        "machine": c.machine({"loadavg_before": load_before}),
        "settings": {
            "orders": args.orders,
            "projects": PROJECTS,
            "clients": args.clients,
            "runs": args.runs,
            "samples_per_block": args.samples,
            "heavy_requests": args.heavy_requests,
            "list_pages_per_request": 5,
            "page_size": 50,
            "server": {
                "command": "in-process django.test.Client" if args.in_process else "eoms serve",
                "workers": workers,
                "mode": "production",
            },
            "database": database,
            "migrate_s": migrate_s,
        },
        "data": {**generated, "summary": summary_build},
        "statements_per_request": statements,
        "plans": plans,
        "figures": figures,
        "ratios": ratios(figures),
        "targets": targets(figures, generated),
        "worker_memory_mb": {"peak_rss": max((m["peak_rss_mb"] for m in memory.values()), default=None)},
        "sql": sample_sql,
        "profile": profiled,
    }


def profile(token: str, n: int, path: str) -> str:
    """pyinstrument over n requests of `path` in-process (django.test.Client); for the order list, n
    pages of 50 orders following next_cursor."""
    from django.test import Client
    from pyinstrument import Profiler

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    client.get(path)  # imports, first compilation
    profiler = Profiler(interval=0.0005)
    profiler.start()
    cursor = ""
    for _ in range(n):
        if path == "/api/v1/orders":
            cursor = client.get(path, {"cursor": cursor}).json()["next_cursor"] or ""
        else:
            client.get(path)
    profiler.stop()
    text = profiler.output_text(unicode=False, color=False, show_all=True)
    if os.environ.get("BENCH_PROFILE_FILE"):
        Path(os.environ["BENCH_PROFILE_FILE"]).write_text(text, encoding="utf-8")
    return text


def explain_lists(company, actors) -> dict:
    """EXPLAIN (ANALYZE) of a first page of some lists: which index, how many rows read."""
    from django.db import connection

    from eoms.orders import selectors

    cases = {
        "list_all": selectors.OrderFilters(),
        "list_state": selectors.OrderFilters(state=["IN_EXECUTION"]),
        "list_region_kind": selectors.OrderFilters(region="east", kind="design"),
        "list_amount_range": selectors.OrderFilters(amount_min=100000, amount_max=200000, ordering="-amount"),
        "list_overdue": selectors.OrderFilters(overdue=True, ordering="deadline"),
    }
    out = {}
    for name, filters in cases.items():
        qs = selectors.list_orders(actor=actors["admin"], filters=filters)[:51]
        sql, params = qs.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", params)
            out[name] = [row[0] for row in cursor.fetchall()]
    return out


def ratios(figures: dict) -> dict:
    """Per scenario and client count: API p50 ÷ raw p50, and whether API ≤ 1.5 × raw + 20 ms (p50 and p99)."""
    out = {}
    for name, f in figures.items():
        out[name] = {}
        for n, api in f["api"].items():
            raw = f["raw"][n]
            out[name][n] = {
                "p50_ratio": api["p50_ms"] / raw["p50_ms"] if raw["p50_ms"] else None,
                "p50_within": api["p50_ms"] <= 1.5 * raw["p50_ms"] + 20,
                "p99_within": api["p99_ms"] <= 1.5 * raw["p99_ms"] + 20,
            }
    return out


def targets(figures: dict, generated: dict) -> dict:
    lists = {k: v for k, v in figures.items() if k.startswith("list_")}
    return {
        "generator_under_60_s": generated["generate_s"] < 60,
        "list_p99_at_most_50_ms_1_client": {k: v["api"]["1"]["p99_ms"] <= TARGET_LIST_P99_MS for k, v in lists.items()},
        "list_p99_at_most_50_ms_every_client_count": {
            k: all(x["p99_ms"] <= TARGET_LIST_P99_MS for x in v["api"].values()) for k, v in lists.items()
        },
        "dashboard_at_most_1_s_1_client": {
            k: v["api"]["1"]["p99_ms"] <= TARGET_DASHBOARD_MS for k, v in figures.items() if not k.startswith("list_")
        },
    }


def summary(result: dict) -> str:
    d = result["data"]
    lines = [
        f"data: {d['orders_rows']} orders, {d['history_rows']} history rows in {d['generate_s']:.1f} s "
        f"(orders {d['orders_s']:.1f} s, history {d['history_s']:.1f} s, {d['indexes_rebuilt']} indexes "
        f"{d['indexes_s']:.1f} s, {d['foreign_keys_revalidated']} foreign keys {d['foreign_keys_s']:.1f} s, "
        f"analyze {d['analyze_s']:.1f} s); "
        f"summary rebuilt in {d['summary']['rebuild_s']:.1f} s ({d['summary']['buckets']} buckets)"
    ]
    for name, f in result["figures"].items():
        for n, api in f["api"].items():
            raw = f["raw"][n]
            ratio = result["ratios"][name][n]
            lines.append(
                f"{name:<20} {n:>2} clients: API p50 {api['p50_ms']:7.1f} p99 {api['p99_ms']:7.1f} ms | raw p50 "
                f"{raw['p50_ms']:7.1f} p99 {raw['p99_ms']:7.1f} ms | API/raw {ratio['p50_ratio'] or 0:5.2f} "
                f"within 1.5x+20ms: p50 {ratio['p50_within']}, p99 {ratio['p99_within']}"
            )
    return "\n".join(lines)


def failures(result: dict) -> list[str]:
    """What went wrong (never a speed figure): an error answer or a failed statement, a wrong count."""
    out = []
    for name, f in result["figures"].items():
        for kind, by in f.items():
            for n, m in by.items():
                if any(r["errors"] for r in m["runs"]):
                    out.append(f"{name} {kind} at {n} clients: {m['runs'][0]['error_messages']}")
    d = result["data"]
    if d["orders_rows"] != d["orders"]:
        out.append(f"generated {d['orders_rows']} orders, not {d['orders']}")
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke: 20,000 orders, 1 client, 1 run")
    parser.add_argument("--orders", type=int, default=None, help="orders generated (default 1,000,000)")
    parser.add_argument("--clients", default=None, help="comma-separated client counts (default 1,4,16)")
    parser.add_argument("--runs", type=int, default=None, help="runs, the median is reported (default 3)")
    parser.add_argument(
        "--samples",
        type=int,
        default=None,
        help="list pages timed per scenario, run and client count; a quarter as many dashboard requests "
        "(default 160; --quick 20)",
    )
    parser.add_argument("--heavy-requests", type=int, default=None, help="live figures, 1 client (default 1)")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: eoms serve's own)")
    parser.add_argument(
        "--pg",
        default=os.environ.get("BENCH_PG_URL", c.DEFAULT_PG),
        help="PostgreSQL server URL without a database name (default %(default)s)",
    )
    parser.add_argument("--profile", type=int, default=0, help="also profile N list pages in-process (pyinstrument)")
    parser.add_argument("--profile-path", default="/api/v1/orders", help="what --profile requests")
    parser.add_argument("--profile-as", default="admin", choices=("admin", "pm"), help="who --profile requests as")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="call the API through django.test.Client in this process instead of `eoms serve` (no HTTP server)",
    )
    parser.add_argument("--only", default="", help="comma-separated scenario names (default: all)")
    parser.add_argument("--show-sql", action="store_true", help="put the raw statements in the JSON")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    args.orders = args.orders or (20_000 if args.quick else 1_000_000)
    args.clients = [int(x) for x in (args.clients or ("1" if args.quick else "1,4,16")).split(",")]
    args.runs = args.runs or (1 if args.quick else 3)
    args.samples = args.samples or (20 if args.quick else 160)
    args.heavy_requests = args.heavy_requests or 1
    args.only = [x for x in args.only.split(",") if x]
    if args.orders < 1000 or min(args.clients) < 1 or args.runs < 1:
        parser.error("--orders must be at least 1000, --clients and --runs positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    result = benchmark(args)
    result["failures"] = failures(result)
    c.emit_result(result, args.out, summary(result))
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
