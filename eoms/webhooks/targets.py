"""Which URLs a webhook may call, and calling them without being turned against the internal network.

A target must be https (http only when EOMS_WEBHOOKS_ALLOW_PRIVATE lets an administrator point webhooks
at internal receivers, and then only to such an address). Its host is resolved and every address it
resolves to is checked: loopback, private, link-local (169.254.169.254, the cloud metadata service,
among them), multicast, reserved, unspecified and other non-global addresses are refused, for IPv4 and
IPv6 alike; an IPv4-mapped IPv6 address (::ffff:127.0.0.1) is judged as the IPv4 address it carries.
With EOMS_WEBHOOKS_ALLOW_PRIVATE loopback, private and link-local addresses are allowed; multicast,
reserved and unspecified ones never are.

DNS rebinding: the check runs again at every delivery, and the request is sent to the address that was
just checked: `open_connection` connects the socket to that IP itself (the host name is not resolved a
second time), sending the name only in the Host header and, for https, as SNI and for the certificate
check. Redirects are not followed (a 3xx is a failed attempt), and no proxy from the environment is used.
"""

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext as _

from .errors import TargetRefused

__all__ = ["Target", "check_target", "open_connection"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # path and query, sent as the request target
    address: str  # the checked IP to connect to


def _refused(message: str) -> TargetRefused:
    return TargetRefused(errors=[{"field": "target_url", "message": message}])


def _plain(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _internal(address: Address) -> bool:
    """Loopback, private or link-local: what EOMS_WEBHOOKS_ALLOW_PRIVATE may allow."""
    return address.is_loopback or address.is_private or address.is_link_local


def _never(address: Address) -> bool:
    return address.is_multicast or address.is_unspecified or address.is_reserved


def address_allowed(address: Address, *, allow_private: bool) -> bool:
    address = _plain(address)
    if _never(address):
        return False
    if address.is_global:
        return True
    return allow_private and _internal(address)


def _resolve(host: str, port: int) -> list[Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise _refused(_("The host name of the target does not resolve."))
    found = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise _refused(_("The host name of the target does not resolve."))
    return found


def check_target(url: str) -> Target:
    """The target to send to, with the address checked; TargetRefused saying why not."""
    allow_private = settings.WEBHOOKS_ALLOW_PRIVATE
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise _refused(_("Enter a valid URL."))
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise _refused(_("Enter a valid https URL."))
    if parts.username or parts.password:
        raise _refused(_("A target URL may not contain a user name or password."))
    if parts.scheme == "http" and not allow_private:
        raise _refused(_("The target must use https."))
    port = port or (443 if parts.scheme == "https" else 80)
    addresses = _resolve(parts.hostname, port)
    for address in addresses:
        if not address_allowed(address, allow_private=allow_private):
            raise _refused(
                _("The target resolves to an internal address (%(address)s); webhooks may not call it.")
                % {"address": address}
            )
    if parts.scheme == "http" and any(_plain(a).is_global for a in addresses):
        raise _refused(_("The target must use https."))
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(parts.scheme, parts.hostname, port, path, str(addresses[0]))


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self._address = target.address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        # The certificate is checked against the host name, not the address we connected to.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def open_connection(target: Target, *, timeout: float) -> http.client.HTTPConnection:
    """A connection that will reach `target.address` and no other (see the module's docstring)."""
    if target.scheme == "https":
        return _PinnedHTTPSConnection(target, timeout)
    return _PinnedHTTPConnection(target, timeout)
