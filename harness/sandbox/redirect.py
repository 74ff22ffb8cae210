"""Make a Redis server reach other regions' servers through its region's fault-proxy routes.

Sentinel "fixes" any replica whose ``master_host:master_port`` differs from the primary's
address it knows (``+fix-slave-config``), and after a failover sends every replica the new
primary's own address. So a replica told to replicate from a proxy port is soon pointed
past the proxy. Instead, each server is told the real addresses and runs with a small
``LD_PRELOAD`` library that rewrites its outgoing ``connect()`` to ``127.0.0.1:P`` into
``127.0.0.1:<route port>`` for every other region's server port P. Sentinel, INFO and
CLIENT LIST still show the addresses Sentinel expects; the bytes cross the fault proxy.

The library is compiled from the C source below with the system's C compiler at `up`;
without one, `build` returns None and the sandbox falls back to proxy ports in
``replicaof`` (which Sentinel undoes, as harness.actions.network then reports).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from harness.errors import EnvironmentProblem

PORTS_VARIABLE = "HARNESS_REDIRECT_PORTS"

_SOURCE = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>

#define MAX_ROUTES 64
static unsigned short from_port[MAX_ROUTES], to_port[MAX_ROUTES];
static int route_count;
static int (*real_connect)(int, const struct sockaddr *, socklen_t);

/* HARNESS_REDIRECT_PORTS="P1=Q1,P2=Q2": 127.0.0.1:P1 is dialled as 127.0.0.1:Q1. */
__attribute__((constructor)) static void load_routes(void) {
    real_connect = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    const char *spec = getenv("HARNESS_REDIRECT_PORTS");
    while (spec && *spec && route_count < MAX_ROUTES) {
        char *end;
        long from = strtol(spec, &end, 10);
        if (*end != '=') break;
        long to = strtol(end + 1, &end, 10);
        from_port[route_count] = (unsigned short)from;
        to_port[route_count] = (unsigned short)to;
        route_count++;
        if (*end != ',') break;
        spec = end + 1;
    }
}

int connect(int fd, const struct sockaddr *address, socklen_t length) {
    if (address && address->sa_family == AF_INET && length >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)address;
        if (in->sin_addr.s_addr == htonl(INADDR_LOOPBACK)) {
            for (int i = 0; i < route_count; i++) {
                if (ntohs(in->sin_port) == from_port[i]) {
                    struct sockaddr_in routed = *in;
                    routed.sin_port = htons(to_port[i]);
                    return real_connect(fd, (const struct sockaddr *)&routed, sizeof routed);
                }
            }
        }
    }
    return real_connect(fd, address, length);
}
"""


def build(directory: Path) -> Path | None:
    """Compile the redirect library into `directory`; None when no C compiler is installed."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "redirect.c"
    library = directory / "redirect.so"
    source.write_text(_SOURCE)
    result = subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(source), "-ldl"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise EnvironmentProblem(f"{compiler} could not build {library}: {result.stderr.strip()[-300:]}")
    return library


def environment(library: Path, routes: Mapping[int, int]) -> dict[str, str]:
    """Variables that make a process dial 127.0.0.1:P as 127.0.0.1:routes[P]."""
    return {
        "LD_PRELOAD": str(library),
        PORTS_VARIABLE: ",".join(f"{port}={route}" for port, route in sorted(routes.items())),
    }
