"""Helpers shared by bench/transition.py, bench/transition_embedded.py and bench/memory.py: the
environment (production-like settings in a temporary EOMS_DATA_DIR), a throwaway PostgreSQL
database, `eoms serve` as a subprocess with its workers' memory and CPU read from /proc, a keep-alive
HTTP client, the company the benchmarks work in (made through the services), and the figures
(percentiles, medians, machine information)."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"  # enough for the content check (magic bytes)

# --- environment -------------------------------------------------------------------------------------


def bench_env(data_dir: str, database_url: str | None, *, conn_max_age: int = 60) -> dict:
    """The environment of the benchmark process and of `eoms serve`: production mode as deploy/ runs
    it (keys set, no debug, persistent connections of 60 s as deploy/k8s/base/configmap.yaml), in a
    temporary data directory. SQLite (database_url None) is explicitly allowed."""
    env = {
        "DJANGO_SETTINGS_MODULE": "eoms.settings",
        "EOMS_MODE": "production",
        "EOMS_SECRET_KEY": secrets.token_urlsafe(50),
        "EOMS_AUDIT_KEY": secrets.token_urlsafe(50),
        # Field encryption keys (production refuses to start without them): fresh for each run.
        "EOMS_FIELD_KEYS": "k1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "EOMS_BLIND_INDEX_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "EOMS_JWT_KEYS": "j1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "EOMS_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "EOMS_DATA_DIR": data_dir,
        "EOMS_DEBUG": "false",  # DEBUG keeps every SQL statement in memory
        "EOMS_RELAY_IN_PROCESS": "false",
        "EOMS_DB_CONN_MAX_AGE": str(conn_max_age),
        "EOMS_LOG_LEVEL": "WARNING",  # in this process; `eoms serve` logs at INFO (Server)
        "EOMS_WEB_TIMEOUT": "120",
        # The load comes from one address and a few users far faster than any real client: the API rate
        # limits stay on (their cost is part of what is measured) with limits no benchmark reaches.
        "EOMS_API_RATE_PER_IP": "1000000000",
        "EOMS_API_RATE_PER_USER": "1000000000",
        "EOMS_API_RATE_PER_CLIENT": "1000000000",
        "EOMS_API_RATE_EXPENSIVE": "1000000000",
        # The benchmarks' users sign in with personal tokens made by the script, with no authenticator
        # app: production requires two-factor authentication of admin and finance users, and their
        # tokens would be refused (accounts.services._token_meets_two_factor). Nobody is required here.
        "EOMS_2FA_REQUIRED_ROLES": "",
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    else:
        env["EOMS_ALLOW_SQLITE"] = "true"
    return env


def setup_django(env: dict, *, fast_hasher: bool = False) -> None:
    """Set this process up with `env` (see bench_env) and django.setup(). With `fast_hasher` the
    passwords made here use MD5 (nobody signs in with them)."""
    for key in ("DATABASE_URL", "EOMS_MEDIA_DIR", "EOMS_ALLOW_SQLITE"):
        os.environ.pop(key, None)
    os.environ.update(env)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django
    from django.conf import settings

    if fast_hasher:
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    django.setup()


def migrate() -> float:
    from django.conf import settings
    from django.core.management import call_command

    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # whitenoise warns without it
    t0 = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    return time.perf_counter() - t0


@contextlib.contextmanager
def temp_data_dir(prefix: str):
    path = tempfile.mkdtemp(prefix=prefix)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --- PostgreSQL --------------------------------------------------------------------------------------


def pg_admin(server_url: str):
    """An autocommit connection to the server's `postgres` database."""
    import psycopg

    return psycopg.connect(f"{server_url.rstrip('/')}/postgres", autocommit=True, connect_timeout=10)


@contextlib.contextmanager
def throwaway_database(server_url: str, label: str):
    """CREATE DATABASE eoms_bench_<label>_<pid> on the server, yield its URL, DROP it (WITH FORCE,
    so a connection left open cannot keep it)."""
    name = f"eoms_bench_{label}_{os.getpid()}"
    with pg_admin(server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server_url.rstrip('/')}/{name}", name
    finally:
        with contextlib.suppress(Exception), pg_admin(server_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_version(server_url: str) -> str:
    try:
        with pg_admin(server_url) as conn:
            return conn.execute("SHOW server_version").fetchone()[0]
    except Exception as exc:  # reported, the benchmark goes on without it
        return f"unreachable: {exc}"


def pg_settings(database_url: str) -> dict:
    import psycopg
    from django.conf import settings

    names = ("synchronous_commit", "fsync", "shared_buffers", "max_connections", "wal_level")
    with psycopg.connect(database_url, autocommit=True) as conn:
        shown = {n: conn.execute(f"SHOW {n}").fetchone()[0] for n in names}
    # How EOMS talks to it (decision 0021): parameters bound on the server, statements prepared after
    # prepare_threshold uses on a connection; or bound on the client, every statement parsed anew.
    options = settings.DATABASES["default"].get("OPTIONS", {})
    return {
        **shown,
        "server_side_binding": bool(options.get("server_side_binding")),
        "prepare_threshold": options.get("prepare_threshold") if options.get("server_side_binding") else None,
    }


def pgbench_path() -> str | None:
    found = shutil.which("pgbench")
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True):
        return str(candidate)
    return None


PGBENCH_MISSING = (
    "pgbench is not installed. It comes with the PostgreSQL client programs: on Debian/Ubuntu "
    "`apt-get install postgresql-client` (Debian 12: postgresql-client-15 ships /usr/bin/pgbench), "
    "on RHEL `dnf install postgresql-contrib`, on macOS with Homebrew `brew install libpq`."
)


# --- /proc -------------------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """Direct children of `pid` (gunicorn's workers of its master)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(p) for p in (task / "children").read_text().split()]
    return out


def memory_kb(pid: int) -> dict:
    """VmRSS (resident now) and VmHWM (peak resident) in kB, or {} when the process is gone."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    except OSError:
        return {}
    return out


def reset_peak_rss(pid: int) -> bool:
    """Reset a process's VmHWM to its current RSS (Linux: write 5 to /proc/<pid>/clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, 0.0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def postgres_backends(database: str) -> list[int]:
    """Pids of the PostgreSQL server processes serving `database` (their command line names it),
    so the CPU the server spends for this benchmark is told apart from other users of the server."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if cmdline.startswith("postgres: ") and f" {database} " in cmdline:
                pids.append(int(proc.name))
    return pids


class CpuMeter:
    """CPU seconds spent between start() and stop() by: this process (the load generator), reaped
    child processes (pgbench), and the processes `server_pids()` and `backend_pids()` list. Those
    lists are sampled every `interval` seconds while the meter runs, so a process that starts
    meanwhile (a new database connection) is counted from zero, and one that ends is counted up to
    its last sample (at most `interval` of its CPU is missed)."""

    def __init__(self, server_pids=lambda: [], backend_pids=lambda: [], interval: float = 0.2):
        self.server_pids = server_pids
        self.backend_pids = backend_pids
        self.interval = interval

    def _sample(self, first: bool = False) -> None:
        for group, lister in (("server", self.server_pids), ("backend", self.backend_pids)):
            base, last = self.base[group], self.last[group]
            for pid in lister():
                value = cpu_seconds(pid)
                if pid not in base:
                    base[pid] = value if first else 0.0
                if value or pid not in last:
                    last[pid] = value

    def _loop(self) -> None:
        while not self.stopping.wait(self.interval):
            self._sample()

    def start(self):
        import threading

        self.base = {"server": {}, "backend": {}}
        self.last = {"server": {}, "backend": {}}
        self.t0 = time.perf_counter()
        self.self0 = _self_cpu()
        self.kids0 = _children_cpu()
        self._sample(first=True)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="cpu-meter", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> dict:
        wall = time.perf_counter() - self.t0
        self.stopping.set()
        self.thread.join()
        self._sample()
        used = {g: sum(max(0.0, self.last[g][p] - self.base[g][p]) for p in self.base[g]) for g in self.base}
        return {
            "wall_s": wall,
            "load_generator_cpu_s": _self_cpu() - self.self0,
            "pgbench_cpu_s": _children_cpu() - self.kids0,
            "app_server_cpu_s": used["server"],
            "postgres_cpu_s": used["backend"],
        }


def _self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


# --- `eoms serve` ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`eoms serve` (gunicorn) as a subprocess on a free port, with `env`; stopped with SIGTERM (its
    graceful shutdown). Its output goes to a log file in `log_dir`, shown when it fails."""

    def __init__(self, env: dict, log_dir: str, *, workers: int | None = None, threads: int = 1, log_level="INFO"):
        self.port = free_port()
        self.workers_wanted = workers
        self.threads = threads
        self.log_path = Path(log_dir) / f"serve-{self.port}.log"
        # `eoms serve`, run as `python -m eoms.cli` from ROOT: the server runs the code of the tree this
        # benchmark lives in (also when that is an exported snapshot beside an editable install).
        cmd = [sys.executable, "-m", "eoms.cli", "serve", "--bind", f"127.0.0.1:{self.port}"]
        cmd += ["--threads", str(threads)]
        if workers:
            cmd += ["--workers", str(workers)]
        self.cmd = cmd
        # INFO, as deploy/ runs it: one access line per request is part of the cost of a request.
        self.env = {**os.environ, **env, "PYTHONPATH": str(ROOT), "EOMS_LOG_LEVEL": log_level}
        self.proc = None

    def start(self, timeout: float = 90.0) -> Server:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=str(ROOT), stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"eoms serve exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    conn.close()
                    self._wait_for_workers(deadline)
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"eoms serve did not answer /healthz within {timeout} s:\n{self.log_tail()}")

    def _wait_for_workers(self, deadline: float) -> None:
        from eoms.core.management.commands.serve import default_workers

        want = self.workers_wanted or default_workers()
        while time.monotonic() < deadline and len(self.worker_pids()) < want:
            time.sleep(0.1)

    def worker_pids(self) -> list[int]:
        return children(self.proc.pid) if self.proc else []

    def worker_memory(self) -> dict:
        """Each worker's resident and peak resident memory in MB."""
        out = {}
        for pid in self.worker_pids():
            m = memory_kb(pid)
            if m:
                out[pid] = {"rss_mb": m.get("VmRSS", 0) / 1024, "peak_rss_mb": m.get("VmHWM", 0) / 1024}
        return out

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 40.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Http:
    """One client's connection: http.client with keep-alive (it reconnects by itself when the server
    closes after a response, as gunicorn's sync workers do)."""

    def __init__(self, port: int, headers: dict | None = None, timeout: float = 120.0):
        self.port = port
        self.timeout = timeout
        self.headers = headers or {}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.reconnects = 0

    def request(self, method: str, path: str, body=None, headers: dict | None = None) -> tuple[int, bytes, dict]:
        all_headers = {**self.headers, **(headers or {})}
        if isinstance(body, dict | list):
            body = json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=all_headers)
                response = self.conn.getresponse()
                data = response.read()
                return response.status, data, dict(response.getheaders())
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A kept-alive connection the server closed meanwhile: reconnect once and resend.
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                self.reconnects += 1
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        self.conn.close()


# --- the company -------------------------------------------------------------------------------------


class Company:
    """What the benchmarks work in, made through the services as an admin would: users of each role
    (passwords hashed with whatever hasher is configured), a customer, a project whose manager is the
    PM and whose engineer is a member, and one published default approval flow (one node, any
    approver). `orders_in_execution(n)` walks orders to IN_EXECUTION through the real transitions."""

    PASSWORD = "bench-password-1"

    def __init__(self):
        from stdnum.cn import uscc

        from eoms.accounts.roles import ProjectRole, Role
        from eoms.accounts.services import create_user, set_membership
        from eoms.approvals.services import publish_definition, save_definition
        from eoms.masterdata.models import Region
        from eoms.masterdata.services import create_customer, create_project, create_project_type

        def user(name, role):
            return create_user(
                actor=None, username=name, password=self.PASSWORD, display_name=f"基准 {name}", roles=[role]
            )

        self.admin = user("bench-admin", Role.ADMIN)
        self.pm = user("bench-pm", Role.PROJECT_MANAGER)
        self.approver = user("bench-approver", Role.APPROVER)
        self.engineer = user("bench-engineer", Role.FIELD_ENGINEER)
        project_type = create_project_type(actor=self.admin, code="bench", name="基准测试", name_en="Benchmark")
        base = "91310000123456789"[:17]
        customer = create_customer(
            actor=self.admin,
            name="基准测试城市建设有限公司",
            uscc=base + uscc.calc_check_digit(base),
            region=Region.EAST,
            grade="B",
        )
        self.project = create_project(
            actor=self.admin,
            code="BENCH-001",
            name="基准测试工程",
            customer=customer,
            project_type=project_type,
            region=Region.EAST,
            manager=self.pm,
        )
        set_membership(actor=self.admin, user=self.pm, project=self.project, role=ProjectRole.PM)
        set_membership(actor=self.admin, user=self.engineer, project=self.project, role=ProjectRole.ENGINEER)
        set_membership(actor=self.admin, user=self.approver, project=self.project, role=ProjectRole.VIEWER)
        document = {
            "nodes": [
                {
                    "type": "approval",
                    "id": "review",
                    "name": "Review",
                    "approvers": {"source": "users", "users": [str(self.approver.pk)]},
                    "mode": "any",
                }
            ],
            "on_reject": "rejected",
        }
        definition = save_definition(
            actor=self.admin, key="bench-review", name="Review", document=document, is_default=True
        )
        publish_definition(actor=self.admin, definition_id=definition.id)

    def token(self, user=None) -> str:
        """A personal API token of `user` (the PM by default), issued through the service."""
        from eoms.accounts.services import issue_api_token

        _, secret = issue_api_token(actor=user or self.pm, name="benchmark", days=1)
        return secret

    def order_in_execution(self, i: int):
        """One order walked through create, quotation, submit, the approver's decision, signing (with
        the signed contract attached) and start of execution: every step a real service call."""
        from eoms.approvals.models import ApprovalTask, TaskState
        from eoms.approvals.services import decide_task
        from eoms.orders.attachments import inspect_upload
        from eoms.orders.services import create_order, transition_order
        from eoms.orders.state import OrderState

        order = create_order(
            actor=self.pm, project=self.project, title=f"基准订单 {i}", contract_amount=Decimal("1250000.00")
        )
        transition_order(actor=self.pm, order_id=order.id, name="start_quotation")
        transition_order(actor=self.pm, order_id=order.id, name="submit")
        task = ApprovalTask.objects.get(instance__subject_id=str(order.pk), state=TaskState.PENDING)
        decide_task(actor=self.approver, task_id=task.pk, decision="approve")
        contract = inspect_upload("contract.pdf", PDF)
        transition_order(actor=self.pm, order_id=order.id, name="sign", attachments=[("signed_contract", contract)])
        order = transition_order(actor=self.pm, order_id=order.id, name="start_execution")
        if order.state != OrderState.IN_EXECUTION:
            raise AssertionError(f"order {order.number} is {order.state}, not IN_EXECUTION")
        return order

    def orders_in_execution(self, n: int, *, start: int = 0) -> list:
        return [self.order_in_execution(start + i) for i in range(n)]


# The pair of transitions that cycles an order between two states with one role and no guard
# (eoms/orders/state.py): hold (IN_EXECUTION → ON_HOLD, comment required) and resume (back).
CYCLE = {"IN_EXECUTION": ("hold", "ON_HOLD"), "ON_HOLD": ("resume", "IN_EXECUTION")}
HOLD_COMMENT = "基准测试：暂停等待材料"


def transition_body(state: str, version: int | None) -> tuple[str, dict]:
    """The next transition of the cycle from `state`, and the request body (with the version read)."""
    name, _ = CYCLE[state]
    body = {"comment": HOLD_COMMENT} if name == "hold" else {}
    if version is not None:
        body["version"] = version
    return name, body


def time_seal(seal) -> dict:
    """Seal the audit entries the runs wrote, as the relay does after each pass (eoms.core.audit.seal;
    off the request path, so in neither side's throughput), and time it: entries, wall seconds, CPU
    seconds of this process (the hashing; on SQLite the database's work too)."""
    t, cpu = time.perf_counter(), time.process_time()
    sealed = seal()
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    return {
        "entries": sealed,
        "seconds": wall,
        "cpu_s": cpu,
        "us_per_entry": 1e6 * wall / sealed if sealed else None,
        "cpu_us_per_entry": 1e6 * cpu / sealed if sealed else None,
    }


def sealing_line(sealing: dict) -> str:
    if not sealing["entries"]:
        return "sealed afterwards: no audit entries"
    return (
        f"sealed afterwards: {sealing['entries']} audit entries in {sealing['seconds']:.3f} s "
        f"({sealing['us_per_entry']:.0f} µs each, {sealing['cpu_us_per_entry']:.0f} µs of CPU here)"
    )


# --- figures -----------------------------------------------------------------------------------------


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list (p in 0..100)."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def median_of(runs: list[dict]) -> dict:
    """Each numeric field (also one level down): the median over runs; plus the runs themselves."""
    out = {}
    for key, value in runs[0].items():
        if isinstance(value, bool):
            out[key] = value
        elif isinstance(value, int | float) or value is None:
            numbers = [r[key] for r in runs if isinstance(r.get(key), int | float)]
            out[key] = statistics.median(numbers) if numbers else None
        elif (
            isinstance(value, dict)
            and value
            and all(isinstance(v, int | float) for v in value.values())
            and all(isinstance(r.get(key), dict) and set(r[key]) == set(value) for r in runs)
        ):
            out[key] = {k: statistics.median(r[key][k] for r in runs) for k in value}
        else:
            out[key] = value
    out["runs"] = runs
    return out


def rounded(value, digits: int = 3):
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v, digits) for v in value]
    return value


def source() -> dict:
    """Which code was measured: the commit of ROOT and the files changed under eoms/ (uncommitted work
    of others is measured too), or BENCH_SOURCE when ROOT is an exported snapshot."""
    if os.environ.get("BENCH_SOURCE"):
        return {"root": str(ROOT), "source": os.environ["BENCH_SOURCE"]}
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "eoms"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return {"root": str(ROOT), "commit": None}
    return {"root": str(ROOT), "commit": commit, "uncommitted_under_eoms": [d[3:] for d in dirty if d.strip()]}


def machine(extra: dict | None = None) -> dict:
    import django

    try:
        from importlib.metadata import version

        gunicorn = version("gunicorn")
    except Exception:
        gunicorn = "unknown"
    try:
        up = subprocess.run(["uptime"], capture_output=True, text=True, timeout=5, check=False).stdout.strip()
    except OSError:
        up = ""
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_total = ""
    with contextlib.suppress(OSError):
        mem_total = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory": mem_total,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "django": django.get_version(),
        "gunicorn": gunicorn,
        "uptime": up,
        "loadavg": os.getloadavg(),
        "code": source(),
        **(extra or {}),
    }


def emit_result(result: dict, out: str | None, summary: str) -> None:
    """The JSON on stdout (and in `out`), the summary on stderr."""
    text = json.dumps(rounded(result), indent=2, ensure_ascii=False, default=str)
    print(text)
    if out:
        Path(out).write_text(text + "\n", encoding="utf-8")
    print(summary, file=sys.stderr)
    for failure in result.get("failures") or []:
        print(f"FAILED: {failure}", file=sys.stderr)
