"""Prometheus text for the proxies: bytes per proxy and direction, connections, active toxics."""

from __future__ import annotations

from collections.abc import Iterable

from ._proxy import Proxy

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_BYTES = (
    ("toxiproxy_proxy_received_bytes_total", "received", "Bytes read from the source of a direction."),
    ("toxiproxy_proxy_sent_bytes_total", "sent", "Bytes written to the destination of a direction."),
)


def _labels(**labels: str) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{key}="{escape(value)}"' for key, value in labels.items()) + "}"


def render(proxies: Iterable[Proxy]) -> str:
    """The exposition text for every proxy."""
    proxies = list(proxies)
    lines: list[str] = []
    for name, kind, help_text in _BYTES:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        for proxy in proxies:
            for direction in ("upstream", "downstream"):
                labels = _labels(
                    direction=direction, proxy=proxy.name, listener=proxy.listen, upstream=proxy.upstream
                )
                lines.append(f"{name}{labels} {proxy.bytes_total(direction, kind)}")
    lines += [
        "# HELP toxiproxy_proxy_connections_total Client connections accepted.",
        "# TYPE toxiproxy_proxy_connections_total counter",
    ]
    lines += [f"toxiproxy_proxy_connections_total{_labels(proxy=p.name)} {p.accepted_total}" for p in proxies]
    lines += [
        "# HELP toxiproxy_proxy_active_connections Client connections open now.",
        "# TYPE toxiproxy_proxy_active_connections gauge",
    ]
    lines += [
        f"toxiproxy_proxy_active_connections{_labels(proxy=p.name)} {len(p.connections)}" for p in proxies
    ]
    lines += [
        "# HELP toxiproxy_proxy_active_toxics Toxics configured, by direction and type.",
        "# TYPE toxiproxy_proxy_active_toxics gauge",
    ]
    for proxy in proxies:
        counts: dict[tuple[str, str], int] = {}
        for toxic in proxy.toxics:
            counts[toxic.stream, toxic.type] = counts.get((toxic.stream, toxic.type), 0) + 1
        for (direction, type_), count in sorted(counts.items()):
            labels = _labels(direction=direction, proxy=proxy.name, type=type_)
            lines.append(f"toxiproxy_proxy_active_toxics{labels} {count}")
    lines += [
        "# HELP toxiproxy_proxy_enabled 1 while the proxy listens.",
        "# TYPE toxiproxy_proxy_enabled gauge",
    ]
    lines += [f"toxiproxy_proxy_enabled{_labels(proxy=p.name)} {int(p.running)}" for p in proxies]
    return "\n".join(lines) + "\n"
