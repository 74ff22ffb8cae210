"""The Toxiproxy HTTP API: routes, JSON bodies, status codes and error bodies (spec §0, §1)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from . import _metrics
from ._collection import ProxyCollection, parse_proxy_fields
from ._errors import ApiError, bad_body
from ._http import Request, Response

log = logging.getLogger("harness.faultproxy")

VERSION = "2.12.0"

Route = Callable[..., Awaitable[Response]]


def _json(status: int, value: Any) -> Response:
    return Response(status, json.dumps(value).encode())


def _error(exc: ApiError) -> Response:
    return _json(exc.status, exc.body())


def _no_content() -> Response:
    return Response(204)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise bad_body("empty body")
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise bad_body(str(exc)) from None


class Api:
    """Maps requests to ProxyCollection operations."""

    def __init__(self, collection: ProxyCollection) -> None:
        self.collection = collection
        self._routes: dict[str, dict[str, Route]] = {
            "proxies": {"GET": self.list_proxies, "POST": self.create_proxy},
            "populate": {"POST": self.populate},
            "proxy": {
                "GET": self.get_proxy,
                "POST": self.update_proxy,
                "PATCH": self.update_proxy,
                "DELETE": self.delete_proxy,
            },
            "toxics": {"GET": self.list_toxics, "POST": self.create_toxic},
            "toxic": {
                "GET": self.get_toxic,
                "POST": self.update_toxic,
                "PATCH": self.update_toxic,
                "DELETE": self.delete_toxic,
            },
            "reset": {"POST": self.reset},
            "version": {"GET": self.version},
            "metrics": {"GET": self.metrics},
        }

    async def handle(self, request: Request) -> Response:
        if request.headers.get("user-agent", "").startswith("Mozilla/"):
            return _error(ApiError(403, "User agent not allowed"))
        route, params = _match(urlsplit(request.target).path)
        if route is None:
            return Response(404, b"404 page not found\n", "text/plain; charset=utf-8")
        method = request.method.upper()
        handler = self._routes[route].get(method)
        if handler is None:
            return _error(ApiError(405, f"method {method} not allowed"))
        try:
            if route in ("version", "metrics"):
                return await handler(request, *params)
            async with self.collection.lock:
                return await handler(request, *params)
        except ApiError as exc:
            return _error(exc)
        except Exception:
            log.exception("%s %s failed", request.method, request.target)
            return _error(ApiError(500, "internal error"))

    async def list_proxies(self, request: Request) -> Response:
        return _json(200, {name: proxy.to_dict() for name, proxy in self.collection.proxies.items()})

    async def create_proxy(self, request: Request) -> Response:
        proxy = await self.collection.create(parse_proxy_fields(parse_json(request.body)))
        return _json(201, proxy.to_dict())

    async def populate(self, request: Request) -> Response:
        try:
            body = parse_json(request.body)
        except ApiError as exc:
            raise ApiError(exc.status, exc.message, proxies=[]) from None
        proxies = await self.collection.populate(body)
        return _json(201, {"proxies": [proxy.to_dict() for proxy in proxies]})

    async def get_proxy(self, request: Request, name: str) -> Response:
        return _json(200, self.collection.get(name).to_dict())

    async def update_proxy(self, request: Request, name: str) -> Response:
        self.collection.get(name)
        proxy = await self.collection.update(name, parse_proxy_fields(parse_json(request.body)))
        return _json(200, proxy.to_dict())

    async def delete_proxy(self, request: Request, name: str) -> Response:
        await self.collection.delete(name)
        return _no_content()

    async def list_toxics(self, request: Request, name: str) -> Response:
        return _json(200, [toxic.to_dict() for toxic in self.collection.get(name).ordered_toxics()])

    async def create_toxic(self, request: Request, name: str) -> Response:
        self.collection.get(name)
        toxic = await self.collection.add_toxic(name, parse_json(request.body))
        return _json(200, toxic.to_dict())

    async def get_toxic(self, request: Request, name: str, toxic: str) -> Response:
        return _json(200, self.collection.get(name).find_toxic(toxic).to_dict())

    async def update_toxic(self, request: Request, name: str, toxic: str) -> Response:
        self.collection.get(name).find_toxic(toxic)
        updated = await self.collection.update_toxic(name, toxic, parse_json(request.body))
        return _json(200, updated.to_dict())

    async def delete_toxic(self, request: Request, name: str, toxic: str) -> Response:
        await self.collection.remove_toxic(name, toxic)
        return _no_content()

    async def reset(self, request: Request) -> Response:
        await self.collection.reset()
        return _no_content()

    async def version(self, request: Request) -> Response:
        return Response(200, json.dumps({"version": VERSION}).encode() + b"\n")

    async def metrics(self, request: Request) -> Response:
        text = _metrics.render(self.collection.proxies.values())
        return Response(200, text.encode(), _metrics.CONTENT_TYPE)


def _match(path: str) -> tuple[str | None, list[str]]:
    """The route name for a path and its decoded parameters; (None, []) when nothing matches."""
    parts = path.split("/")
    if len(parts) < 2 or parts[0] != "":
        return None, []
    parts = [unquote(part) for part in parts[1:]]
    if any(part == "" for part in parts):
        return None, []
    match parts:
        case ["proxies"]:
            return "proxies", []
        case ["proxies", name]:
            return "proxy", [name]
        case ["proxies", name, "toxics"]:
            return "toxics", [name]
        case ["proxies", name, "toxics", toxic]:
            return "toxic", [name, toxic]
        case [("populate" | "reset" | "version" | "metrics") as route]:
            return route, []
    return None, []
