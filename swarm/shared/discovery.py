"""Zero-config join on a LAN: coordinators advertise `_swarm._tcp.local.` over mDNS, `swarm join` finds one."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import queue
import re
import socket
import time
from dataclasses import dataclass
from typing import Any

import ifaddr
from zeroconf import Error as ZeroconfError
from zeroconf import InterfaceChoice, IPVersion, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncZeroconf

from swarm import __version__
from swarm.shared.addresses import split_host_port

log = logging.getLogger(__name__)

SERVICE_TYPE = "_swarm._tcp.local."
FIND_TIMEOUT_S = 8.0
# How long one ask for an announced coordinator's records waits before the next announced name's turn.
RESOLVE_WAIT_S = 1.0
# mDNS responders answer a query after a random 20-120 ms delay: once one coordinator has
# answered, browse this much longer for others, so that several are reported instead of one at random.
SETTLE_S = 1.0
NOT_FOUND = "no coordinator found on the LAN; pass its address"
WILDCARD_HOSTS = ("0.0.0.0", "", "::")
SWARM_NAME = re.compile(r"[A-Za-z0-9._-]{1,63}")


class DiscoveryError(Exception):
    """No single coordinator could be found on the LAN."""


@dataclass(frozen=True)
class FoundCoordinator:
    """One coordinator's advertisement, as read from its DNS-SD records."""

    name: str
    host: str  # an IPv4 address it published
    grpc_port: int
    http_port: int  # 0: no HTTP endpoint
    version: str
    swarm_name: str = ""  # the coordinator's --swarm-name; empty: unnamed

    @property
    def address(self) -> str:
        return f"{self.host}:{self.grpc_port}"


def advertised_addresses(listen_host: str) -> list[str]:
    """The IPv4 addresses to publish: the one the coordinator listens on, or every non-loopback one for a wildcard."""
    if listen_host not in WILDCARD_HOSTS:
        return [socket.gethostbyname(listen_host)]
    found = [
        str(ip.ip)
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
        if ip.is_IPv4 and not ipaddress.IPv4Address(str(ip.ip)).is_loopback
    ]
    return found or ["127.0.0.1"]


def check_swarm_name(name: str) -> str:
    """A swarm name fits in a TXT record and a terminal: letters, digits, '.', '_' and '-', at most 63."""
    if name and not SWARM_NAME.fullmatch(name):
        raise ValueError(f"--swarm-name must be 1-63 letters, digits, '.', '_' or '-', got {name!r}")
    return name


def coordinator_info(
    addresses: list[str], grpc_port: int, http_port: int, version: str, swarm_name: str = ""
) -> ServiceInfo:
    hostname = socket.gethostname().split(".")[0] or "swarm"
    return ServiceInfo(
        SERVICE_TYPE,
        f"swarm coordinator on {hostname}.{SERVICE_TYPE}",
        addresses=[socket.inet_aton(a) for a in addresses],
        port=grpc_port,
        properties={
            "grpc_port": str(grpc_port),
            "http_port": str(http_port),
            "version": version,
            "swarm_name": swarm_name,
        },
        server=f"{hostname}.local.",
    )


class CoordinatorAdvertiser:
    """Owns one coordinator's mDNS registration; close() withdraws it, so workers stop finding a stopped coordinator.

    Advertising is best effort: a host without multicast still runs its coordinator, and says why in the log.
    """

    def __init__(self, listen: str, grpc_port: int, http: str, swarm_name: str = "") -> None:
        """listen and http are the coordinator's HOST:PORT flags (http empty: none); grpc_port the port it bound."""
        self._listen_host, _ = split_host_port(listen)
        self._ports = (grpc_port, split_host_port(http)[1] if http else 0)
        self._swarm_name = check_swarm_name(swarm_name)
        self._info: ServiceInfo | None = None
        self._zeroconf: AsyncZeroconf | None = None
        self._registering: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Starts registering in the background: probing for a unique name takes about a second."""
        try:
            addresses = advertised_addresses(self._listen_host)
            self._info = coordinator_info(addresses, *self._ports, __version__, self._swarm_name)
            # A coordinator bound to one address advertises on that interface only (127.0.0.1: this machine only).
            interfaces: Any = InterfaceChoice.All if self._listen_host in WILDCARD_HOSTS else addresses
            self._zeroconf = AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
        except OSError as exc:  # an IPv6-only listen address, no multicast route, no interface
            log.warning("not advertising on the LAN (mDNS unavailable: %s); workers must be given the address", exc)
            return
        self._registering = asyncio.create_task(self._register(), name="mdns-advertise")

    async def _register(self) -> None:
        if self._zeroconf is None or self._info is None:
            return
        try:
            announced = await self._zeroconf.async_register_service(self._info, allow_name_change=True)
            await announced
        except (OSError, ValueError, ZeroconfError) as exc:
            log.warning("not advertising on the LAN: %s", exc)
            return
        log.info("advertising %s at %s over mDNS", self._info.name, ", ".join(self._info.parsed_addresses()))

    async def close(self) -> None:
        if self._registering is not None:
            self._registering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._registering
        if self._zeroconf is not None:
            if self._info is not None:
                with contextlib.suppress(OSError, KeyError):
                    await self._zeroconf.async_unregister_service(self._info)
            await self._zeroconf.async_close()
            self._zeroconf = None


def parse_info(info: ServiceInfo) -> FoundCoordinator | None:
    """A coordinator from resolved records, or None when they are not a well-formed swarm advertisement."""
    addresses = info.parsed_addresses(IPVersion.V4Only)
    properties = {
        key.decode("utf-8", "replace"): (value or b"").decode("utf-8", "replace")
        for key, value in info.properties.items()
    }
    grpc_text, http_text = properties.get("grpc_port", ""), properties.get("http_port", "0")
    if not addresses or not grpc_text.isdigit() or not http_text.isdigit():
        log.debug("ignoring a malformed %s advertisement: %s", SERVICE_TYPE, info)
        return None
    grpc_port, http_port = int(grpc_text), int(http_text)
    if not 0 < grpc_port <= 65535 or http_port > 65535:
        return None
    return FoundCoordinator(
        info.name, addresses[0], grpc_port, http_port, properties.get("version", ""), properties.get("swarm_name", "")
    )


def find_coordinators(
    timeout_s: float = FIND_TIMEOUT_S,
    settle_s: float = SETTLE_S,
    interfaces: Any = InterfaceChoice.All,
    swarm_name: str = "",
) -> list[FoundCoordinator]:
    """Browses the LAN for coordinators (of swarm_name, if given): up to timeout_s for the first, then settle_s more."""
    announced: queue.Queue[str] = queue.Queue()

    def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Added:
            announced.put(name)

    zeroconf = Zeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
    browser = ServiceBrowser(zeroconf, SERVICE_TYPE, handlers=[on_change])
    found: dict[str, FoundCoordinator] = {}
    unresolved: list[str] = []  # announced, records not in yet (a busy responder): asked again until the deadline
    deadline = time.monotonic() + timeout_s
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                unresolved.append(announced.get(block=not unresolved, timeout=remaining))
            except queue.Empty:
                if not unresolved:
                    break
            name = unresolved.pop(0)
            wait_ms = int(1000 * min(RESOLVE_WAIT_S, max(deadline - time.monotonic(), 0.0)))
            info = zeroconf.get_service_info(SERVICE_TYPE, name, timeout=max(wait_ms, 1))
            if info is None:
                unresolved.append(name)
                continue
            coordinator = parse_info(info)
            if coordinator is not None and (not swarm_name or coordinator.swarm_name == swarm_name):
                found[name] = coordinator
                deadline = min(deadline, time.monotonic() + settle_s)
        return list(found.values())
    finally:
        browser.cancel()
        zeroconf.close()


def choose_coordinator(found: list[FoundCoordinator], swarm_name: str = "") -> str:
    """The address of the one coordinator found (of swarm_name, if given); several or none is an error."""
    addresses = sorted({c.address for c in found if not swarm_name or c.swarm_name == swarm_name})
    if not addresses and swarm_name:
        raise DiscoveryError(f"no coordinator of swarm {swarm_name!r} found on the LAN; pass its address")
    if not addresses:
        raise DiscoveryError(NOT_FOUND)
    if len(addresses) > 1:
        raise DiscoveryError(f"several coordinators found on the LAN ({', '.join(addresses)}); pass the address of one")
    return addresses[0]


def discover_coordinator(swarm_name: str = "", timeout_s: float = FIND_TIMEOUT_S) -> str:
    """HOST:PORT of the coordinator on this LAN, for `swarm join` without an address."""
    try:
        found = find_coordinators(timeout_s, swarm_name=check_swarm_name(swarm_name))
    except OSError as exc:
        raise DiscoveryError(f"cannot browse the LAN over mDNS ({exc}); pass the coordinator's address") from exc
    return choose_coordinator(found, swarm_name)
