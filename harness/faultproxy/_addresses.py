"""Parsing, resolving and formatting `host:port` strings the way Toxiproxy reports them."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from ._errors import invalid_value


def split_host_port(text: str, field: str, *, allow_port_zero: bool) -> tuple[str, int]:
    """Split `host:port` (IPv6 hosts in brackets); raise a 400 naming `field` when malformed."""
    if not isinstance(text, str) or ":" not in text:
        raise invalid_value(field, f"expected host:port, got {text!r}")
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise invalid_value(field, f"expected [host]:port, got {text!r}")
        host, port_text = text[1:end], text[end + 2 :]
    else:
        host, _, port_text = text.rpartition(":")
        if ":" in host:
            raise invalid_value(field, f"IPv6 hosts need brackets, got {text!r}")
    if not port_text.isascii() or not port_text.isdigit():
        raise invalid_value(field, f"port must be a number, got {text!r}")
    port = int(port_text)
    lowest = 0 if allow_port_zero else 1
    if not lowest <= port <= 65535:
        raise invalid_value(field, f"port must be {lowest}-65535, got {port}")
    if "/" in host or any(c.isspace() for c in host):
        raise invalid_value(field, f"bad host in {text!r}")
    return host, port


def format_address(host: str, port: int) -> str:
    """`127.0.0.1:80`, or `[::1]:80` for IPv6."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _numeric(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


async def resolve_listen(host: str, port: int) -> tuple[socket.AddressFamily, str, int]:
    """The address a listener binds: IPv4 first for names; omitted hosts mean loopback (ours)."""
    # Ours: an empty host binds loopback, never every interface; explicit wildcards are honoured.
    if host == "":
        return socket.AF_INET, "127.0.0.1", port
    if host == "localhost":
        return socket.AF_INET, "127.0.0.1", port
    numeric = _numeric(host)
    if numeric is not None:
        family = socket.AF_INET6 if ":" in numeric else socket.AF_INET
        return family, numeric, port
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"lookup {host}: no such host")
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr[0], port


async def resolve_upstream(host: str, port: int) -> list[tuple[socket.AddressFamily, tuple]]:
    """Addresses to dial for an upstream, in the order to try them."""
    numeric = _numeric(host)
    if numeric is not None:
        family = socket.AF_INET6 if ":" in numeric else socket.AF_INET
        return [(family, (numeric, port))]
    if host == "localhost":
        return [(socket.AF_INET, ("127.0.0.1", port)), (socket.AF_INET6, ("::1", port))]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(info[0], info[4]) for info in infos]
