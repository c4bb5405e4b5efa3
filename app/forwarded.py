"""The client's address behind load balancers: X-Forwarded-For, believed only from trusted proxies.

Each proxy appends the address it got the request from, so the header reads `client, proxy1, ...` and
the TCP peer is the last proxy. Whatever stands left of what a trusted proxy appended may have been
written by the client itself, so the header is read from the right: past the peer and every entry
that is itself a trusted proxy, the first address is the client's, as a proxy we trust saw it. A peer
that is not a trusted proxy is the client, whatever its header claims; with no trusted proxies
(PHOTOS_TRUSTED_PROXIES, the default) the header is never read.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TrustedProxies:
    """The networks whose X-Forwarded-For is believed (validated by `Settings`)."""

    def __init__(self, networks: Iterable[str]) -> None:
        self._networks = tuple(ipaddress.ip_network(network) for network in networks)

    def __contains__(self, address: Address) -> bool:
        return any(address in network for network in self._networks)

    def client_of(self, peer: str | None, forwarded_for: Iterable[str]) -> str | None:
        """The client's address: `peer` unless it is a trusted proxy, else the right-most address of the
        X-Forwarded-For lines `forwarded_for` that is not one (the left-most when all are). An entry that
        is not an address ends the walk at the trusted proxy right of it: what lies beyond is unknown."""
        client = parse_address(peer)
        if client is None or not self._networks:
            return peer
        entries = [entry.strip() for line in forwarded_for for entry in line.split(",")]
        for entry in reversed([entry for entry in entries if entry]):  # empty list elements are ignored
            if client not in self:
                break
            forwarded = parse_address(entry)
            if forwarded is None:
                break
            client = forwarded
        return str(client)


def parse_address(text: str | None) -> Address | None:
    """An address as a peer or an X-Forwarded-For entry gives it; the port some proxies append
    ("203.0.113.7:41234", "[2001:db8::1]:443") is dropped, an IPv4-mapped IPv6 address is the IPv4 one."""
    if not text:
        return None
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
