"""What an API request costs the worker around its own work (issue 6): CPU per request, in process,
for a request that does nothing of its own, the order list (page numbers and keyset pages), the
dashboard and an order transition, each with a personal API token.

Requests go through Django's WSGI handler in this process (the whole middleware stack, ninja, the
JSON access line at INFO written to a file, metrics in files as the workers keep them), without
gunicorn and HTTP: what a gunicorn worker runs
for a request, minus parsing and writing the HTTP. The figure is `time.process_time()` per request
(this process only: PostgreSQL's own CPU is not in it), the median and mean over `--requests`
requests after a warm-up, and the SQL statements one request runs. `--profile DIR` writes a
pyinstrument profile of each endpoint there.

    .venv/bin/python bench/overhead.py                       # PostgreSQL, 20,000 orders, 300 requests each
    .venv/bin/python bench/overhead.py --redis redis://127.0.0.1:6379/12 --profile /tmp/prof
    .venv/bin/python bench/overhead.py --sqlite              # the embedded database

See bench/README.md, "overhead"."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402


class Wsgi:
    """Requests straight into Django's WSGI handler, as a gunicorn worker hands them over."""

    def __init__(self, token: str):
        from django.core.handlers.wsgi import WSGIHandler

        self.handler = WSGIHandler()
        self.token = token

    def request(self, method: str, path: str, query: dict | None = None, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else b""
        environ = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": urlencode(query or {}),
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_AUTHORIZATION": f"Bearer {self.token}",
            "HTTP_USER_AGENT": "bench-overhead",
            "HTTP_ACCEPT": "application/json",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(data),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if data:
            environ["CONTENT_TYPE"] = "application/json"
            environ["CONTENT_LENGTH"] = str(len(data))
        status = []
        response = self.handler(environ, lambda s, headers, exc_info=None: status.append(s))
        try:
            content = b"".join(response)
        finally:
            response.close()  # request_finished: Django's end of request, as gunicorn calls it
        code = int(status[0].split()[0])
        return code, content


def endpoints(company, orders: list) -> list[dict]:
    """name, whose token, and a function making one request (list pages follow next_cursor)."""
    state = {"cursor": "", "order": 0, "versions": {}}

    def keyset(http):
        code, content = http.request("GET", "/api/v1/orders", {"cursor": state["cursor"], "page_size": 50})
        state["cursor"] = json.loads(content)["next_cursor"] or "" if code == 200 else ""
        return code, content

    def transition(http):
        order = orders[state["order"] % len(orders)]
        state["order"] += 1
        current = state["versions"].get(order.pk, (order.state, order.version))
        path, body = c.transition_body(*current)
        code, content = http.request("POST", f"/api/v1/orders/{order.pk}/{path}", body=body)
        if code == 200:
            data = json.loads(content)
            state["versions"][order.pk] = (data["state"], data["version"])
        return code, content

    return [
        {"name": "me", "who": "pm", "call": lambda http: http.request("GET", "/api/v1/accounts/me")},
        {
            "name": "list_page",
            "who": "pm",
            "call": lambda http: http.request("GET", "/api/v1/orders", {"page_size": 50}),
        },
        {"name": "list_keyset", "who": "pm", "call": keyset},
        {"name": "list_keyset_admin", "who": "admin", "call": keyset},
        {
            "name": "dashboard_pm",
            "who": "pm",
            "call": lambda http: http.request("GET", "/api/v1/reports/dashboard"),
        },
        {"name": "transition", "who": "pm", "call": transition},
    ]


def measure(endpoint: dict, http: Wsgi, requests: int, warmup: int, profile_dir: str | None) -> dict:
    from django.db import connection

    for _ in range(warmup):
        code, content = endpoint["call"](http)
        if code != 200:
            raise RuntimeError(f"{endpoint['name']}: {code} {content[:300]!r}")
    statements = []  # (Django empties connection.queries when a request starts: CaptureQueriesContext sees none)
    with connection.execute_wrapper(lambda execute, sql, *rest: statements.append(sql) or execute(sql, *rest)):
        endpoint["call"](http)
    cpu, wall = [], []
    for _ in range(requests):
        c0, w0 = time.process_time(), time.perf_counter()
        code, content = endpoint["call"](http)
        cpu.append((time.process_time() - c0) * 1000)
        wall.append((time.perf_counter() - w0) * 1000)
        if code != 200:
            raise RuntimeError(f"{endpoint['name']}: {code} {content[:300]!r}")
    out = {
        "cpu_ms_median": statistics.median(cpu),
        "cpu_ms_mean": statistics.fmean(cpu),
        "wall_ms_median": statistics.median(wall),
        "statements": len(statements),
        "sql": [sql[:160] for sql in statements],
    }
    if profile_dir:
        import cProfile
        import pstats

        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
        for _ in range(requests):
            endpoint["call"](http)
        profiler.stop()
        path = Path(profile_dir) / f"{endpoint['name']}.txt"
        path.write_text(profiler.output_text(unicode=False, color=False, show_all=False), encoding="utf-8")
        # CPU only (PostgreSQL's round trips are not in it), per function: where the worker's time goes.
        cpu = cProfile.Profile(time.process_time)
        cpu.runcall(lambda: [endpoint["call"](http) for _ in range(requests)])
        cpu.dump_stats(Path(profile_dir) / f"{endpoint['name']}.prof")
        with open(Path(profile_dir) / f"{endpoint['name']}.cpu.txt", "w", encoding="utf-8") as f:
            stats = pstats.Stats(cpu, stream=f).strip_dirs()
            stats.sort_stats("cumulative").print_stats(80)
            stats.sort_stats("tottime").print_stats(50)
        out["profile"] = str(path)
    return out


@contextlib.contextmanager
def stderr_to(path: str):
    """The access lines (and anything else on fd 2) into a file while measuring, as a worker writes them."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as f:
        os.dup2(f.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def benchmark(args) -> dict:
    import reports

    with (
        c.temp_data_dir("eoms-bench-overhead-") as data_dir,
        contextlib.nullcontext((None, None)) if args.sqlite else c.throwaway_database(args.pg, "overhead") as (
            url,
            _name,
        ),
    ):
        env = c.bench_env(data_dir, url)
        env["EOMS_LOG_LEVEL"] = args.log_level
        if args.redis:
            env["REDIS_URL"] = args.redis
        else:
            os.environ.pop("REDIS_URL", None)
        # As under `eoms serve`: each metric's values in files shared by the workers (prometheus_client
        # reads the variable when it is imported).
        metrics_dir = Path(data_dir) / "metrics"
        metrics_dir.mkdir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        c.setup_django(env, fast_hasher=True)
        import eoms

        c.migrate()
        company = c.Company()
        if url:
            projects = reports.make_projects(company)
            generated = reports.generate(url, company, projects, args.orders)
            reports.rebuild_summary()
        else:
            generated = {"orders_rows": 0}
        orders = company.orders_in_execution(4)
        tokens = {"pm": company.token(company.pm), "admin": company.token(company.admin)}
        results = {}
        log_file = str(Path(data_dir) / "access.log")
        for endpoint in endpoints(company, orders):
            if args.only and endpoint["name"] not in args.only:
                continue
            http = Wsgi(tokens[endpoint["who"]])
            with stderr_to(log_file):
                results[endpoint["name"]] = measure(endpoint, http, args.requests, args.warmup, args.profile)
            r = results[endpoint["name"]]
            print(
                f"{endpoint['name']:<18} CPU {r['cpu_ms_median']:6.2f} ms median {r['cpu_ms_mean']:6.2f} mean, "
                f"wall {r['wall_ms_median']:6.2f} ms, {r['statements']} statements",
                file=sys.stderr,
            )
        access_lines = len(Path(log_file).read_text(encoding="utf-8", errors="replace").splitlines())
    return {
        "benchmark": "overhead",
        "machine": c.machine({"code_imported_from": str(Path(eoms.__file__).parent)}),
        "settings": {
            "database": "sqlite" if args.sqlite else "postgresql",
            "redis": bool(args.redis),
            "orders": generated["orders_rows"],
            "requests": args.requests,
            "log_level": args.log_level,
            "access_lines": access_lines,
        },
        "results": results,
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", c.DEFAULT_PG))
    parser.add_argument("--sqlite", action="store_true", help="the embedded SQLite database (no orders generated)")
    parser.add_argument("--redis", default="", help="REDIS_URL for the rate limits (default: counted in memory)")
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--log-level", default="INFO", help="INFO writes the access line, as deploy/ runs it")
    parser.add_argument("--only", nargs="*", help="endpoint names")
    parser.add_argument("--profile", metavar="DIR", help="write a pyinstrument profile of each endpoint here")
    parser.add_argument("--out")
    return parser.parse_args(argv)


def summary(result: dict) -> str:
    lines = [f"{'endpoint':<18} {'CPU ms (median)':>16} {'mean':>7} {'statements':>11}"]
    for name, r in result["results"].items():
        lines.append(f"{name:<18} {r['cpu_ms_median']:16.2f} {r['cpu_ms_mean']:7.2f} {r['statements']:11d}")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    result = benchmark(args)
    c.emit_result(result, args.out, summary(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
