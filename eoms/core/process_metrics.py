"""The metrics of a process without a web server (`eoms relay`, `eoms worker`): its relay and consumer
counters (eoms.core.metrics.MESSAGING_COUNTERS) on a port of its own, for Prometheus to scrape.

As /metrics, it answers only to `Authorization: Bearer <EOMS_METRICS_TOKEN>` (401 otherwise) and is
not started while the token is unset. Only the counters: the gauges read from the database and the
readiness checks are the web process's /metrics.
"""

import hmac
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .metrics import MESSAGING_COUNTERS

__all__ = ["parse_address", "serve"]


class _Counters:
    def describe(self):
        return []

    def collect(self):
        for counter in MESSAGING_COUNTERS:
            yield from counter.collect()


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(_Counters())


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # scrapes every few seconds: no access log
        pass


def _app(token: str):
    def app(environ, start_response):
        if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"Not found\n"]
        scheme, _sep, given = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            start_response(
                "401 Unauthorized",
                [("Content-Type", "text/plain; charset=utf-8"), ("WWW-Authenticate", 'Bearer realm="metrics"')],
            )
            return [b"Unauthorized\n"]
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [generate_latest(REGISTRY)]

    return app


def parse_address(value: str) -> tuple[str, int]:
    """ "9102" or "0.0.0.0:9102" → (host, port); host defaults to all interfaces (a pod's IP)."""
    host, _sep, port = value.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ImproperlyConfigured(f"metrics address {value!r}: the port must be a number")
    if not 0 <= number <= 65535:
        raise ImproperlyConfigured(f"metrics address {value!r}: no such port")
    return (host.strip("[]") or "0.0.0.0"), number  # noqa: S104 - scraped from outside the pod


def serve(address: str) -> WSGIServer:
    """Serve the counters on `address` in a daemon thread; the server (its port in server_port)."""
    token = settings.EOMS_METRICS_TOKEN
    if not token:
        raise ImproperlyConfigured("--metrics-port needs EOMS_METRICS_TOKEN: the counters are served only with it.")
    host, port = parse_address(address)
    server = make_server(host, port, _app(token), handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="eoms-metrics", daemon=True).start()
    return server
