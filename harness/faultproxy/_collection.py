"""Every proxy by name, and the operations the API performs on them (spec §1, §2).

All operations run on the event loop, one at a time (a lock), so a change is complete,
live connections included, before the next one starts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from ._addresses import resolve_listen, split_host_port
from ._errors import ApiError, bad_body, invalid_value
from ._proxy import Proxy
from ._toxics import Toxic, build, parse_create, parse_update

DEFAULT_LISTEN = "127.0.0.1:0"


@dataclass(frozen=True, slots=True)
class ProxyFields:
    """The fields of a proxy create, populate or update body; None where absent."""

    name: str | None
    upstream: str | None
    listen: str | None
    enabled: bool | None


def parse_proxy_fields(body: Any) -> ProxyFields:
    if not isinstance(body, dict):
        raise bad_body("expected a JSON object")
    values = {}
    for key, kind in (("name", str), ("upstream", str), ("listen", str), ("enabled", bool)):
        value = body.get(key)
        if value is not None and not isinstance(value, kind):
            raise bad_body(f"{key}: expected {'a boolean' if kind is bool else 'a string'}")
        values[key] = value
    return ProxyFields(**values)


def check_new_proxy(fields: ProxyFields, suffix: str = "") -> None:
    """Required fields first (name, then upstream), then the §4 value rules."""
    if not fields.name:
        raise ApiError(400, f"missing required field: name{suffix}")
    if not fields.upstream:
        raise ApiError(400, f"missing required field: upstream{suffix}")
    check_values(fields)


def check_values(fields: ProxyFields) -> None:
    if fields.name is not None and "/" in fields.name:
        raise invalid_value("name", "must not contain '/'")
    if fields.upstream is not None:
        host, _ = split_host_port(fields.upstream, "upstream", allow_port_zero=False)
        if not host:
            raise invalid_value("upstream", f"missing host in {fields.upstream!r}")
    if fields.listen:
        split_host_port(fields.listen, "listen", allow_port_zero=True)


async def listen_key(listen: str) -> tuple[str, int] | str:
    """What `listen` binds, for comparing two listen strings (`localhost:1` ≡ `127.0.0.1:1`)."""
    try:
        host, port = split_host_port(listen, "listen", allow_port_zero=True)
        _, address, port = await resolve_listen(host, port)
    except (ApiError, OSError):
        return listen
    return address, port


class ProxyCollection:
    """The server's proxies; each method is one API operation and raises ApiError on failure."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.proxies: dict[str, Proxy] = {}
        self.lock = asyncio.Lock()

    def get(self, name: str) -> Proxy:
        try:
            return self.proxies[name]
        except KeyError:
            raise ApiError(404, "proxy not found") from None

    async def create(self, fields: ProxyFields) -> Proxy:
        check_new_proxy(fields)
        if fields.name in self.proxies:
            raise ApiError(409, "proxy already exists")
        proxy = await self._new_proxy(fields)
        self.proxies[proxy.name] = proxy
        return proxy

    async def _new_proxy(self, fields: ProxyFields) -> Proxy:
        proxy = Proxy(self.loop, fields.name, fields.listen or DEFAULT_LISTEN, fields.upstream)
        if fields.enabled is not False:
            await proxy.start()
        return proxy

    async def populate(self, body: Any) -> list[Proxy]:
        """Create or replace each item in order; raises with `proxies` = the ones applied."""
        if not isinstance(body, list):
            raise ApiError(400, "bad request body: expected a JSON array", proxies=[])
        items = []
        for number, item in enumerate(body, start=1):
            try:
                fields = parse_proxy_fields(item)
                check_new_proxy(fields, f" at proxy {number}")
            except ApiError as exc:
                raise ApiError(exc.status, exc.message, proxies=[]) from None
            items.append(fields)
        applied: list[Proxy] = []
        for fields in items:
            existing = self.proxies.get(fields.name)
            if existing is not None:
                same_listen = await listen_key(fields.listen or DEFAULT_LISTEN) == await listen_key(
                    existing.listen
                )
                if same_listen and fields.upstream == existing.upstream:
                    applied.append(existing)
                    continue
                existing.stop()
                del self.proxies[fields.name]
            try:
                proxy = await self._new_proxy(fields)
            except ApiError as exc:
                raise ApiError(exc.status, exc.message, proxies=[p.to_dict() for p in applied]) from None
            self.proxies[proxy.name] = proxy
            applied.append(proxy)
        return applied

    async def update(self, name: str, fields: ProxyFields) -> Proxy:
        proxy = self.get(name)
        check_values(ProxyFields(None, fields.upstream, fields.listen, None))
        listen = proxy.listen if fields.listen is None else fields.listen or DEFAULT_LISTEN
        upstream = proxy.upstream if fields.upstream is None else fields.upstream
        enabled = proxy.enabled if fields.enabled is None else fields.enabled
        if await listen_key(listen) != await listen_key(proxy.listen):
            proxy.stop()
            proxy.listen, proxy.upstream = listen, upstream
        elif upstream != proxy.upstream:
            proxy.upstream = upstream
            proxy.close_connections()
        if enabled and not proxy.running:
            await proxy.start()
        elif not enabled and proxy.running:
            proxy.stop()
        proxy.enabled = enabled
        return proxy

    async def delete(self, name: str) -> None:
        proxy = self.get(name)
        proxy.stop()
        del self.proxies[name]

    async def reset(self) -> None:
        """Re-enable every proxy and remove every toxic; the first bind failure is raised at the end."""
        failure = None
        for proxy in list(self.proxies.values()):
            if not proxy.running:
                try:
                    await proxy.start()
                except ApiError as exc:
                    failure = failure or exc
            if proxy.toxics:
                proxy.toxics.clear()
                proxy.apply_toxics("upstream")
                proxy.apply_toxics("downstream")
        if failure is not None:
            raise failure

    async def stop_all(self) -> None:
        for proxy in list(self.proxies.values()):
            proxy.stop()

    # -- toxics -----------------------------------------------------------------------------------

    async def add_toxic(self, proxy_name: str, body: Any) -> Toxic:
        proxy = self.get(proxy_name)
        request = parse_create(body)
        if any(toxic.name == request.name for toxic in proxy.toxics):
            raise ApiError(409, "toxic already exists")
        toxic = build(request)
        proxy.toxics.append(toxic)
        proxy.apply_toxics(toxic.stream)
        return toxic

    async def update_toxic(self, proxy_name: str, toxic_name: str, body: Any) -> Toxic:
        proxy = self.get(proxy_name)
        toxic = proxy.find_toxic(toxic_name)
        toxic.attributes, toxic.toxicity = parse_update(toxic, body)
        toxic.version += 1
        proxy.apply_toxics(toxic.stream)
        return toxic

    async def remove_toxic(self, proxy_name: str, toxic_name: str) -> None:
        proxy = self.get(proxy_name)
        toxic = proxy.find_toxic(toxic_name)
        proxy.toxics.remove(toxic)
        proxy.apply_toxics(toxic.stream)
