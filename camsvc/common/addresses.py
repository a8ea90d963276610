"""Client addresses: the peer of a connection, and ``X-Forwarded-For`` from trusted proxies.

Used by the WebSocket transport (the address a session is logged and limited
by) and by the HTTP guard (failed attempts per address), so both agree on who
the client is.
"""

from __future__ import annotations

import ipaddress
import os

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress


def peer_string(address: object) -> str:
    """A Twisted address as Autobahn names a peer ("tcp4:1.2.3.4:5678", "tcp6:...", "unix:path").

    Autobahn's own ``peer2str`` takes an address up to 21.x and a transport from 22.x on
    (Ubuntu 22.04 ships 21.11), so the early handshake refusal names peers with this.
    """
    if isinstance(address, IPv4Address):
        return f"tcp4:{address.host}:{address.port}"
    if isinstance(address, IPv6Address):
        return f"tcp6:{address.host}:{address.port}"
    if isinstance(address, UNIXAddress):
        name = address.name
        return f"unix:{os.fsdecode(name) if name is not None else ''}"
    return f"?:{address}"


def peer_address(peer: str) -> str:
    """The address part of an Autobahn/Twisted peer string ("tcp4:1.2.3.4:5678" -> "1.2.3.4")."""
    kind, _, rest = peer.partition(":")
    if kind in ("tcp4", "tcp6", "tcp") and rest:
        host, _, _port = rest.rpartition(":")
        return host or rest
    return kind or peer


def parse_networks(values: list) -> list:
    return [ipaddress.ip_network(v, strict=False) for v in values]


def client_address(peer_addr: str, forwarded_for: str | None, trusted: list) -> str:
    """The client's address, honouring ``X-Forwarded-For`` only from trusted proxies.

    With a chain of proxies the right-most address not itself trusted is the
    client (entries further left are whatever the client claimed).
    """
    if not trusted or not forwarded_for:
        return peer_addr
    if not _in_networks(peer_addr, trusted):
        return peer_addr
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in_networks(hop, trusted):
            return hop[:64]
    return hops[0][:64] if hops else peer_addr


def _in_networks(address: str, networks: list) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)
