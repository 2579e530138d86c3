"""Which network addresses REST and file sources may reach.

The rule for users is in docs/connectors/README.md, "Endpoints sources may reach".

A connection's URL is user input: pointed at `http://169.254.169.254/` or `http://10.0.0.5:8080/`
it would make Tidemark fetch cloud credentials or probe the internal network for whoever can
create connections. So every host a source contacts is resolved and **every** address it
resolves to must be globally routable; loopback, link-local (cloud metadata services),
private, shared (CGNAT), reserved and multicast ranges, and the metadata host names, are refused
unless ``TIDEMARK_EGRESS_ALLOW`` lists them.

REST sources connect to the address that was checked (resolve, check, then pin it: a DNS
answer that changes between check and connect cannot move the request), and every redirect
or follow-up URL goes through the same check because the check sits in the HTTP transport.
File stores (S3, Azure) resolve inside pyarrow's own clients, so their endpoint is checked
when the connection is saved, checked and opened for every run.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from tidemark.errors import FailureKind, SourceError
from tidemark.settings import PlatformSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

# Names that answer with cloud credentials wherever they resolve (GCP, Azure, AWS, Alibaba, Oracle).
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                            "instance-data.ec2.internal", "metadata.azure.com", "metadata.oraclecloud.com"})
# Global-looking addresses that are metadata services all the same.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254",
                                                                  "100.100.100.200", "169.254.170.2"))


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (both families), as text."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (UnicodeError, ValueError) as exc:  # not a name IDNA or the resolver can take
        raise OSError(f"{host!r} is not a valid host name: {exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class EndpointRefusedError(SourceError):
    """An endpoint outside what sources may reach: a configuration error naming the field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message, FailureKind.CONFIG, **({"field": field} if field else {}))


def _address(text: str) -> IPAddress | None:
    try:
        found = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


@dataclass(frozen=True)
class EgressPolicy:
    """The allow-list: networks whose addresses sources may reach, and host names trusted as they are."""

    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str) -> EgressPolicy:
        """``"127.0.0.0/8, ::1, minio.internal"``: CIDR networks or single addresses, and host names."""
        networks: list[Network] = []
        hosts: set[str] = set()
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.add(item.lower().rstrip("."))
        return cls(tuple(networks), frozenset(hosts))

    @classmethod
    def from_settings(cls, settings: PlatformSettings | None = None) -> EgressPolicy:
        return cls.parse((settings or PlatformSettings()).egress_allow)

    def allowed_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def refusal(self, address: IPAddress) -> str | None:
        """Why ``address`` may not be reached, or ``None`` when it may."""
        if any(address in net for net in self.networks if net.version == address.version):
            return None
        if address in METADATA_ADDRESSES:
            return "a cloud metadata address"
        if address.is_loopback:
            return "a loopback address"
        if address.is_link_local:
            return "a link-local address"
        if address.is_unspecified or address.is_multicast or address.is_reserved:
            return "not a unicast internet address"
        if not address.is_global:
            return "a private-network address"
        return None

    def check_host(self, host: str, port: int, field: str | None, resolver: Resolver = system_resolver
                   ) -> list[str]:
        """The addresses ``host`` may be reached at; :class:`EndpointRefusedError` when any of them is refused.

        Every address counts: a name answering both a public and a private address could send the
        connection to either. An unresolvable name is left to the connection itself to report."""
        host = host.strip("[]")
        if self.allowed_host(host):
            return resolver(host, port)
        setting = "add it to TIDEMARK_EGRESS_ALLOW if this is intended"
        if host.lower().rstrip(".") in METADATA_HOSTS:
            raise EndpointRefusedError(f"{host} is a cloud metadata service; sources may not reach it ({setting})",
                                       field)
        literal = _address(host)
        addresses = [host] if literal is not None else resolver(host, port)
        for text in addresses:
            address = _address(text)
            why = "not an IP address" if address is None else self.refusal(address)
            if why is not None:
                shown = host if text == host else f"{host} (resolves to {text})"
                raise EndpointRefusedError(f"{shown} is {why}; sources may not reach it ({setting})", field)
        return addresses

    def check_url(self, url: str, field: str | None, resolver: Resolver = system_resolver) -> list[str]:
        try:
            parts = urlsplit(url if "//" in url else f"//{url}")
            host = parts.hostname
        except ValueError as exc:
            raise EndpointRefusedError(f"{url!r} is not a valid URL: {exc}", field) from exc
        if not host:
            raise EndpointRefusedError(f"{url!r} has no host name", field)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise EndpointRefusedError(f"{url!r} has an invalid port", field) from exc
        try:
            return self.check_host(host, port, field, resolver)
        except OSError:
            return []  # does not resolve (now): the connection attempt reports it in its own words


def refused_endpoints(endpoints: dict[str, str], policy: EgressPolicy | None = None,
                      resolver: Resolver = system_resolver) -> list[EndpointRefusedError]:
    """The refusal of each ``field: url`` a connection would contact (blocking: resolves names)."""
    policy = policy or EgressPolicy.from_settings()
    refused = []
    for field, url in endpoints.items():
        try:
            policy.check_url(url, field, resolver)
        except EndpointRefusedError as exc:
            refused.append(exc)
    return refused


def check_endpoints(endpoints: dict[str, str], resolver: Resolver = system_resolver) -> None:
    """Raise the first refusal of :func:`refused_endpoints` (a run or a check stops on it)."""
    refused = refused_endpoints(endpoints, resolver=resolver)
    if refused:
        raise refused[0]


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport that checks each request's host, then connects to the checked address.

    The URL's host is replaced by the address just checked; the ``Host`` header (already set by
    the client) and the TLS server name (``sni_hostname``) keep the original name, so virtual
    hosting and certificate checks work as before. Redirects and absolute "next page" URLs are
    requests like any other and pass through here too."""

    def __init__(self, policy: EgressPolicy | None = None, *, field: str | None = None,
                 resolver: Resolver = system_resolver, inner: httpx.BaseTransport | None = None,
                 proxies: dict[str, str] | None = None, **transport_options: Any) -> None:
        self.policy = policy or EgressPolicy.from_settings()
        self.field = field
        self.resolver = resolver
        self.inner = inner or httpx.HTTPTransport(**transport_options)
        # httpx ignores HTTP(S)_PROXY once a client has its own transport: honour them here.
        self.proxies = urllib.request.getproxies() if proxies is None else proxies
        self._proxied: dict[str, httpx.HTTPTransport] = {}

    def _proxy_for(self, url: httpx.URL) -> httpx.BaseTransport | None:
        proxy = self.proxies.get(url.scheme)
        if not proxy or urllib.request.proxy_bypass(url.host):
            return None
        if proxy not in self._proxied:
            self._proxied[proxy] = httpx.HTTPTransport(proxy=proxy)
        return self._proxied[proxy]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        try:
            addresses = self.policy.check_host(host, request.url.port or _default_port(request.url), self.field,
                                               self.resolver)
        except OSError as exc:
            if self._proxy_for(request.url) is None:
                raise httpx.ConnectError(f"cannot resolve {host}: {exc}", request=request) from None
            addresses = []  # names only the proxy can resolve are the proxy's to refuse
        proxied = self._proxy_for(request.url)
        if proxied is not None:
            # The proxy connects, to the name: checked above, not pinned.
            return proxied.handle_request(request)
        if _address(host) is not None or not addresses:
            return self.inner.handle_request(request)
        if request.url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        original = request.url
        # Each checked address in turn (a name may answer ::1 first while the server listens on IPv4 only).
        for address in addresses[:-1]:
            request.url = original.copy_with(host=address)
            try:
                return self.inner.handle_request(request)
            except httpx.ConnectError:
                continue
        request.url = original.copy_with(host=addresses[-1])
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()
        for proxied in self._proxied.values():
            proxied.close()


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


def endpoint_fields(fields: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``{field: url}`` of the non-empty URLs among ``fields``."""
    return {name: url for name, url in fields if url}
