"""The metadata proxy: 169.254.169.254:80 inside each router namespace, relayed to the metadata
service on the host with the signed headers it trusts (stratus/compute/metadata/identify.py).

How the namespace reaches the host: the listening socket is opened *inside* the router's
namespace (a thread enters it with setns(2), binds, and comes back) and then served from the
agent in the host's namespace, where the metadata service's 127.0.0.1 is reachable. No process
per router, and nothing the guest controls runs anywhere.

Who is asking: the TCP peer address, and the network it belongs to is the router interface whose
subnet holds it (a router's subnets never overlap). `lookup(network_id, address)` (a call to the
network conductor in production) turns that into the instance and its project. Whatever headers
the guest sent about itself are dropped.
"""

from __future__ import annotations

import ctypes
import http.client
import ipaddress
import logging
import os
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from stratus.network.dataplane.linux.namespaces import NETNS_DIR

log = logging.getLogger("stratus.network.dataplane.linux")

CLONE_NEWNET = 0x40000000
METADATA_ADDRESS = "169.254.169.254"
# Request headers passed on to the metadata service; everything else the guest sent is dropped.
PASSED_HEADERS = ("accept", "user-agent", "content-type")
RELAYED_HEADERS = ("content-type", "content-length", "etag", "last-modified")

# (network_id, guest address) -> {"instance_id": ..., "project_id": ...} or None.
Lookup = Callable[[str, str], dict[str, str] | None]

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def listen_in_netns(netns: str, address: str, port: int) -> socket.socket:
    """A TCP socket listening on address:port inside `netns`, usable from any namespace."""
    result: dict[str, Any] = {}

    def inside() -> None:  # a thread of its own: setns changes the calling thread only
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(NETNS_DIR / netns, os.O_RDONLY)
        try:
            _setns(target)
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((address, port))
                sock.listen(64)
                result["socket"] = sock
            finally:
                _setns(own)
        except OSError as exc:
            result["error"] = exc
        finally:
            os.close(own)
            os.close(target)

    thread = threading.Thread(target=inside, name=f"netns {netns}")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["socket"]  # type: ignore[no-any-return]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sock: socket.socket, relay: _Relay) -> None:
        super().__init__((METADATA_ADDRESS, 80), _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.relay = relay


class _Relay:
    def __init__(self, router_id: str, networks: list[tuple[str, str]], lookup: Lookup,
                 target: tuple[str, int], sign: Callable[[str], str]) -> None:
        self.router_id = router_id
        self.networks = [(network_id, ipaddress.ip_network(cidr)) for network_id, cidr in networks]
        self.lookup = lookup
        self.target = target
        self.sign = sign

    def identify(self, address: str) -> tuple[str, dict[str, str]] | None:
        ip = ipaddress.ip_address(address)
        for network_id, net in self.networks:
            if ip.version == net.version and ip in net:
                found = self.lookup(network_id, address)
                return (network_id, found) if found else None
        return None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("metadata proxy: " + format, *args)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._forward("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._forward("HEAD")

    def _forward(self, method: str) -> None:
        relay = self.server.relay
        address = self.client_address[0]
        try:
            found = relay.identify(address)
        except Exception as exc:  # the conductor unreachable: the guest retries later
            log.warning("metadata proxy %s: lookup of %s failed: %s", relay.router_id, address, exc)
            self._reply(503, b"Metadata lookup failed\n")
            return
        if found is None:
            self._reply(404, b"No instance for this address\n")
            return
        network_id, instance = found
        headers = {name: self.headers[name] for name in PASSED_HEADERS if self.headers.get(name)}
        headers.update({"X-Instance-ID": instance["instance_id"], "X-Tenant-ID": instance["project_id"],
                        "X-Instance-ID-Signature": relay.sign(instance["instance_id"]),
                        "X-Forwarded-For": address, "X-Neutron-Network-ID": network_id})
        try:
            conn = http.client.HTTPConnection(*relay.target, timeout=30)
            conn.request(method, self.path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            conn.close()
        except OSError as exc:
            log.warning("metadata proxy %s: metadata service unreachable: %s", relay.router_id, exc)
            self._reply(502, b"Metadata service unreachable\n")
            return
        self.send_response(response.status)
        for name in RELAYED_HEADERS:
            value = response.getheader(name)
            if value is not None and name != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class MetadataProxies:
    """One proxy per router namespace, (re)started when the router's networks change."""

    def __init__(self, lookup: Lookup, target: tuple[str, int], sign: Callable[[str], str]) -> None:
        self._lookup = lookup
        self._target = target
        self._sign = sign
        self._servers: dict[str, tuple[_Server, threading.Thread]] = {}

    def ensure(self, router_id: str, netns: str, networks: list[tuple[str, str]]) -> None:
        running = self._servers.get(router_id)
        if running is not None:
            running[0].relay.networks = _Relay(router_id, networks, self._lookup, self._target,
                                               self._sign).networks
            return
        sock = listen_in_netns(netns, METADATA_ADDRESS, 80)
        server = _Server(sock, _Relay(router_id, networks, self._lookup, self._target, self._sign))
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                  name=f"metadata proxy {router_id}", daemon=True)
        thread.start()
        self._servers[router_id] = (server, thread)

    def stop(self, router_id: str) -> None:
        running = self._servers.pop(router_id, None)
        if running is not None:
            server, thread = running
            server.shutdown()
            server.server_close()
            thread.join(5)

    def stop_all(self) -> None:
        for router_id in list(self._servers):
            self.stop(router_id)

    def routers(self) -> set[str]:
        return set(self._servers)
