"""Where a webhook may be sent: the URL's rules and the addresses its host resolves to.

A webhook makes this server send requests to an address an operator typed, so
that address could be one the operator cannot reach themselves: this host's
own services (loopback), the link-local network and the cloud metadata
services (which hand out credentials). Those are refused unless an
administrator allows them for the subscription. Site networks (10/8,
192.168/16, ...) are allowed: on premises, that is where receivers live.

The check runs when a subscription is saved and again before every delivery
run, on the addresses the request then connects to, so a DNS answer that
changed since (rebinding) cannot redirect a delivery.
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

SCHEMES = {"http": 80, "https": 443}

# Cloud metadata services outside the link-local range (which is refused as a whole).
METADATA_ADDRESSES = {
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    ipaddress.ip_address("192.0.0.192"),  # Oracle Cloud (classic)
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
}
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class TargetError(Exception):
    """The URL cannot be used: bad form, or its host does not resolve."""


class TargetRefused(TargetError):
    """The URL's host is (or resolves to) an address webhooks may not reach without an administrator's leave."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # with the query string
    addresses: tuple[str, ...]  # checked, in the order to try


def parse(url: str) -> tuple[str, str, int, str]:
    """The scheme, host, port and path of ``url``; raises TargetError on what a webhook URL may not be."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise TargetError(f"Not a valid URL: {error}.") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise TargetError("The URL must start with https:// (or http://).")
    if not parts.hostname:
        raise TargetError("The URL has no host.")
    if parts.username is not None or parts.password is not None:
        # They would be stored in clear; the signature is how a receiver knows the sender.
        raise TargetError("The URL may not carry a user name or password.")
    if parts.fragment:
        raise TargetError("The URL may not have a #fragment.")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return scheme, parts.hostname, port or SCHEMES[scheme], path


def refusal(address: str) -> str | None:
    """Why webhooks may not reach ``address`` without an administrator's leave, or None when they may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6:
        # An IPv4 address inside an IPv6 one reaches the IPv4 host.
        embedded = (
            ip.ipv4_mapped or ip.sixtofour or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in NAT64 else None)
        )
        if embedded is not None:
            ip = embedded
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address (this server)"
    if ip.is_link_local:
        return "a link-local address (and cloud metadata services)"
    if ip.is_unspecified:
        return "the unspecified address (this server)"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_reserved or (ip.version == 4 and ip == ipaddress.IPv4Address("255.255.255.255")):
        return "a reserved address"
    return None


def resolve(host: str, port: int) -> tuple[str, ...]:
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise TargetError(f"The host {host} does not resolve: {error}.") from None
    addresses = []
    for _family, _type, _proto, _name, sockaddr in answers:
        if sockaddr[0] not in addresses:
            addresses.append(sockaddr[0])
    return tuple(addresses)


def check_url(url: str, *, allow_private: bool = False) -> Target:
    """The target ``url`` names, resolved and checked; raises TargetError (TargetRefused for a forbidden address)."""
    scheme, host, port, path = parse(url)
    addresses = resolve(host, port)
    if not addresses:
        raise TargetError(f"The host {host} does not resolve.")
    if not allow_private:
        for address in addresses:
            reason = refusal(address)
            if reason:
                shown = host if host == address else f"{host} ({address})"
                raise TargetRefused(
                    f"{shown} is {reason}; webhooks go there only if an administrator allows private targets."
                )
    return Target(scheme, host, port, path, addresses)
