"""Worker memory under 100,000 mixed requests against `eoms serve` (issue 6, benchmark 4). One
command, JSON out (stdout, and --out FILE); a short summary goes to stderr.

    .venv/bin/python bench/memory.py [--quick] [--requests 100000] [--out FILE]

What one invocation does (bench/README.md, section "memory"):

1. A throwaway PostgreSQL database eoms_bench_memory_<pid> (--pg; or --sqlite for the embedded
   file), migrated; a company made through the services and --orders orders walked to IN_EXECUTION.
   The PM gets an API token and signs in on the login page (a real session, Argon2 password).
2. `eoms serve` with one sync worker (--workers) on a free port, production settings.
3. --clients threads send --requests requests in a fixed rotation of 20 slots: API order list (6:
   pages and filters varied), API order detail (6), API transition hold/resume (3), the dashboard
   page (1), the order list page (2), the order detail page (2). Random orders (seeded).
4. The worker's RSS (/proc/<pid>/status VmRSS) is sampled every --sample-seconds and exactly when
   10 % of the requests are done and at the end; reported: peak RSS (VmHWM), RSS at 10 % and at
   the end, and the growth between them, plus throughput, p50/p99 per kind and error counts.
   Target of the issue: RSS ≤ 120 MB and growth < 5 %.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

TARGET_RSS_MB = 120
TARGET_GROWTH = 0.05
ROTATION = (["api_list"] * 6 + ["api_detail"] * 6 + ["api_transition"] * 3 + ["page_dashboard"] + ["page_list"] * 2) + [
    "page_detail"
] * 2
STATES = ["IN_EXECUTION", "ON_HOLD"]
ORDERINGS = ["-created", "amount", "-amount", "number", "-updated", "deadline"]


def login(port: int, username: str, password: str) -> str:
    """Sign in through the login page (GET for the CSRF token, POST the form); the Cookie header of
    the session."""
    http = c.Http(port)
    status, body, headers = http.request("GET", "/login/")
    if status != 200:
        raise AssertionError(f"GET /login/: {status}")
    csrf = re.search(r"csrftoken=([^;]+)", headers.get("Set-Cookie", "")).group(1)
    form = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1).decode()
    data = urlencode({"username": username, "password": password, "csrfmiddlewaretoken": form}).encode()
    status, body, headers = http.request(
        "POST",
        "/login/",
        data,
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={csrf}"},
    )
    http.close()
    session = re.search(r"sessionid=([^;]+)", headers.get("Set-Cookie", ""))
    if status != 302 or not session:
        raise AssertionError(f"login failed: {status} {body[:300]!r}")
    return f"csrftoken={csrf}; sessionid={session.group(1)}"


class Mix:
    """The request rotation, the orders and what the clients last read of each."""

    def __init__(self, orders, project_id: str, seed: int = 6):
        self.ids = [str(o.id) for o in orders]
        self.seen = {str(o.id): (o.state, o.version) for o in orders}
        self.project_id = project_id
        self.seed = seed
        self.locks = {oid: threading.Lock() for oid in self.ids}

    def request(self, kind: str, rnd: random.Random) -> tuple[str, str, dict | None, str]:
        """(method, path, body, auth) for one read of `kind`; auth is "token" or "session"."""
        oid = rnd.choice(self.ids)
        if kind == "api_list":
            query = {"page": rnd.randint(1, 4), "page_size": rnd.choice([20, 50]), "ordering": rnd.choice(ORDERINGS)}
            if rnd.random() < 0.5:
                query["state"] = rnd.choice(STATES)
            if rnd.random() < 0.3:
                query["project"] = self.project_id
            if rnd.random() < 0.2:
                query["q"] = "基准"
            return "GET", f"/api/v1/orders?{urlencode(query)}", None, "token"
        if kind == "api_detail":
            return "GET", f"/api/v1/orders/{oid}", None, "token"
        if kind == "page_dashboard":
            return "GET", "/", None, "session"
        if kind == "page_list":
            query = {"page": rnd.randint(1, 3)}
            if rnd.random() < 0.5:
                query["state"] = rnd.choice(STATES)
            return "GET", f"/orders/?{urlencode(query)}", None, "session"
        return "GET", f"/orders/{oid}/", None, "session"


def run(
    server: c.Server, mix: Mix, *, token: str, cookie: str, requests: int, clients: int, sample_seconds: float
) -> dict:
    worker = server.worker_pids()
    if len(worker) != 1:
        raise AssertionError(f"expected one worker, found {worker}")
    worker = worker[0]
    done = [0]
    claimed = [0]
    done_lock = threading.Lock()
    mark = max(1, requests // 10)
    marks: dict[str, dict] = {}
    samples: list[tuple[float, int, float]] = []
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: Counter = Counter()
    errors: Counter = Counter()
    stop = threading.Event()
    t0 = time.perf_counter()

    def rss_mb() -> float:
        return c.memory_kb(worker).get("VmRSS", 0) / 1024

    def sampler():
        while not stop.wait(sample_seconds):
            samples.append((time.perf_counter() - t0, done[0], rss_mb()))

    def client(i: int):
        rnd = random.Random(mix.seed * 1000 + i)
        token_http = c.Http(server.port, {"Authorization": f"Bearer {token}", "Accept": "application/json"})
        page_http = c.Http(server.port, {"Cookie": cookie})
        lat, stat, errs = defaultdict(list), Counter(), Counter()
        k = i
        try:
            while True:
                with done_lock:
                    if claimed[0] >= requests:
                        break
                    claimed[0] += 1
                kind = ROTATION[k % len(ROTATION)]
                k += 1
                oid = lock = None
                if kind == "api_transition":
                    oid = rnd.choice(mix.ids)
                    lock = mix.locks[oid]
                    if not lock.acquire(blocking=False):
                        with done_lock:
                            claimed[0] -= 1
                        continue  # another client is moving this order right now: pick another request
                    name, body = c.transition_body(*mix.seen[oid])
                    method, path, auth = "POST", f"/api/v1/orders/{oid}/{name}", "token"
                else:
                    method, path, body, auth = mix.request(kind, rnd)
                http = token_http if auth == "token" else page_http
                try:
                    t = time.perf_counter()
                    status, data, _ = http.request(method, path, body)
                    lat[kind].append(1000 * (time.perf_counter() - t))
                    stat[f"{kind} {status}"] += 1
                    if kind == "api_transition" and status == 200:
                        doc = json.loads(data)
                        mix.seen[oid] = (doc["state"], doc["version"])
                    elif status >= 400 or (kind.startswith("page") and status != 200):
                        errs[f"{kind} {status} {data[:120].decode(errors='replace')}"] += 1
                        if kind == "api_transition":
                            s2, d2, _ = token_http.request("GET", f"/api/v1/orders/{oid}")
                            if s2 == 200:
                                doc = json.loads(d2)
                                mix.seen[oid] = (doc["state"], doc["version"])
                finally:
                    if lock is not None:
                        lock.release()
                with done_lock:
                    done[0] += 1
                    n = done[0]
                if n == mark:
                    marks["10_percent"] = {"requests": n, "rss_mb": rss_mb(), "t_s": time.perf_counter() - t0}
                if n % mark == 0:
                    print(f"{n} requests, worker RSS {rss_mb():.1f} MB", file=sys.stderr)
        finally:
            token_http.close()
            page_http.close()
            with done_lock:
                for key, values in lat.items():
                    latencies[key].extend(values)
                statuses.update(stat)
                errors.update(errs)

    sampling = threading.Thread(target=sampler, daemon=True)
    sampling.start()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    stop.set()
    sampling.join()
    end = {"requests": done[0], "rss_mb": rss_mb(), "t_s": wall}
    peak = c.memory_kb(worker).get("VmHWM", 0) / 1024
    at10 = marks.get("10_percent", end)["rss_mb"]
    by_kind = {}
    for kind, values in sorted(latencies.items()):
        values.sort()
        by_kind[kind] = {
            "requests": len(values),
            "p50_ms": c.percentile(values, 50),
            "p99_ms": c.percentile(values, 99),
            "max_ms": values[-1],
        }
    n_errors = sum(errors.values())
    # A coarse curve for the README: at most 40 points.
    step = max(1, len(samples) // 40)
    return {
        "requests": done[0],
        "clients": clients,
        "seconds": wall,
        "requests_per_s": done[0] / wall if wall else 0.0,
        "worker_pid_unchanged": c.children(server.proc.pid) == [worker],
        "rss_mb": {
            "start_of_run": samples[0][2] if samples else None,
            "at_10_percent": at10,
            "end": end["rss_mb"],
            "peak_vmhwm": peak,
            "max_sampled": max((s[2] for s in samples), default=end["rss_mb"]),
        },
        "growth_10_percent_to_end": (end["rss_mb"] - at10) / at10 if at10 else None,
        "samples": [{"t_s": t, "requests": n, "rss_mb": r} for t, n, r in samples[::step]],
        "by_kind": by_kind,
        "statuses": dict(sorted(statuses.items())),
        "errors": n_errors,
        "error_rate": n_errors / done[0] if done[0] else 0.0,
        "error_messages": dict(errors.most_common(5)),
    }


def benchmark(args) -> dict:
    load_before = os.getloadavg()
    with c.temp_data_dir("eoms-bench-memory-") as data_dir, contextlib.ExitStack() as stack:
        url, dbname = (None, None) if args.sqlite else stack.enter_context(c.throwaway_database(args.pg, "memory"))
        env = c.bench_env(data_dir, url)
        c.setup_django(env)  # real password hashers: the PM signs in on the login page
        from django.db import connection

        migrate_s = c.migrate()
        t0 = time.perf_counter()
        company = c.Company()
        token = company.token()
        orders = company.orders_in_execution(args.orders)
        setup_s = time.perf_counter() - t0
        mix = Mix(orders, str(company.project.pk))
        connection.close()
        with c.Server(env, data_dir, workers=1) as server:
            cookie = login(server.port, company.pm.username, c.Company.PASSWORD)
            # The sign-in verifies an Argon2 hash (12 MiB since decision 0019; Django's default was
            # 100 MiB), which raises the worker's peak; it is reported apart (peak_with_sign_in), and
            # the peak is reset so that `peak_vmhwm` covers the mixed requests alone.
            start_memory = server.worker_memory()
            reset = c.reset_peak_rss(server.worker_pids()[0])
            result = run(
                server,
                mix,
                token=token,
                cookie=cookie,
                requests=args.requests,
                clients=args.clients,
                sample_seconds=args.sample_seconds,
            )
            result["worker_memory_after_login"] = list(start_memory.values())
            result["peak_reset_after_login"] = reset
            result["rss_mb"]["peak_with_sign_in"] = max(m["peak_rss_mb"] for m in start_memory.values())
            exit_code = server.stop()
        result["server_exit_code"] = exit_code
    rss = result["rss_mb"]
    growth = result["growth_10_percent_to_end"]
    return {
        "benchmark": "memory",
        "machine": c.machine({"loadavg_before": load_before, "postgresql": c.pg_version(args.pg) if url else None}),
        "settings": {
            "requests": args.requests,
            "clients": args.clients,
            "orders": args.orders,
            "workers": 1,
            "database": "sqlite" if args.sqlite else f"postgresql ({dbname})",
            "rotation": dict(Counter(ROTATION)),
            "server": "eoms serve --workers 1 (sync), production settings, EOMS_DB_CONN_MAX_AGE=60",
            "migrate_s": migrate_s,
            "setup_s": setup_s,
        },
        **result,
        "targets": {
            "rss_at_most_120_mb": rss["peak_vmhwm"] <= TARGET_RSS_MB,
            "rss_at_most_120_mb_with_sign_in": max(rss["peak_vmhwm"], rss["peak_with_sign_in"]) <= TARGET_RSS_MB,
            "growth_below_5_percent": growth is not None and growth < TARGET_GROWTH,
        },
    }


def summary(result: dict) -> str:
    r = result["rss_mb"]
    lines = [
        f"{result['requests']} requests in {result['seconds']:.0f} s ({result['requests_per_s']:.1f}/s), "
        f"{result['errors']} errors",
        f"worker RSS: at 10 % {r['at_10_percent']:.1f} MB, end {r['end']:.1f} MB, peak {r['peak_vmhwm']:.1f} MB, "
        f"growth {result['growth_10_percent_to_end']:.2%}",
    ]
    for kind, k in result["by_kind"].items():
        lines.append(f"  {kind:15} {k['requests']:7d}  p50 {k['p50_ms']:6.1f} ms  p99 {k['p99_ms']:6.1f} ms")
    lines.append(f"targets: {result['targets']}")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke: 600 requests, 24 orders")
    parser.add_argument("--requests", type=int, default=None, help="requests in all (default 100000; --quick 600)")
    parser.add_argument("--orders", type=int, default=None, help="orders (default 600; --quick 24)")
    parser.add_argument("--clients", type=int, default=2, help="client threads (default 2: one waits, one is served)")
    parser.add_argument("--sample-seconds", type=float, default=None, help="RSS sampling interval (default 2)")
    parser.add_argument("--sqlite", action="store_true", help="the embedded SQLite database instead of PostgreSQL")
    parser.add_argument(
        "--pg",
        default=os.environ.get("BENCH_PG_URL", c.DEFAULT_PG),
        help="PostgreSQL server URL without a database name (default %(default)s)",
    )
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    args.requests = args.requests or (600 if args.quick else 100_000)
    args.orders = args.orders or (24 if args.quick else 600)
    args.sample_seconds = args.sample_seconds or (0.5 if args.quick else 2.0)
    if args.requests < 10 or args.orders < 1 or args.clients < 1:
        parser.error("--requests must be at least 10, --orders and --clients positive")
    return args


def failures(result: dict) -> list[str]:
    """What went wrong (never a speed or memory figure): an error answer, a replaced worker, a
    server that did not stop cleanly. Any of these makes the exit status 1."""
    out = []
    if result["errors"]:
        out.append(f"{result['errors']} error answers: {result['error_messages']}")
    if result["requests"] != result["settings"]["requests"]:
        out.append(f"{result['requests']} requests answered, {result['settings']['requests']} wanted")
    if not result["worker_pid_unchanged"]:
        out.append("the worker was replaced during the run")
    if result["server_exit_code"] != 0:
        out.append(f"eoms serve exited with {result['server_exit_code']}")
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    result = benchmark(args)
    result["failures"] = failures(result)
    c.emit_result(result, args.out, summary(result))
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
