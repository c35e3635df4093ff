"""The server's WireGuard interface, through `wg` and `ip` (absolute paths, fixed
environment, bounded in time: fiotray.wg.tools)."""

from __future__ import annotations

import ipaddress
import logging
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fiotray.core.errors import FiotrayError
from fiotray.server.sync import CurrentPeer, Plan, peers_of
from fiotray.wg.dump import parse_wg_dump
from fiotray.wg.tools import last_error_line, require_tool, run_tool

log = logging.getLogger(__name__)
TOOL_TIMEOUT = 10.0
# Peers per `wg set`: about 16 kB of arguments, far below any argv limit.
BATCH = 200
Runner = Callable[[list[str]], subprocess.CompletedProcess[bytes]]


class InterfaceError(FiotrayError):
    default_code = "interface"


def run_bounded(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    return run_tool(argv, TOOL_TIMEOUT)


@dataclass
class WgInterface:
    name: str
    # Each argv goes through `run`; tests put `ip netns exec NS` in front of it.
    run: Runner = run_bounded
    sys_net: Path = Path("/sys/class/net")

    def __post_init__(self) -> None:
        self.wg = require_tool("wg")
        self.ip = require_tool("ip")

    def _tool(self, argv: list[str]) -> bytes:
        result = self.run(argv)
        if result.returncode != 0:
            detail = last_error_line(result.stderr, []) or f"exit {result.returncode}"
            raise InterfaceError(f"{' '.join(argv[1:5])} failed: {detail}")
        return result.stdout

    def exists(self) -> bool:
        return (self.sys_net / self.name).exists()

    def dump(self) -> dict[str, object]:
        """`wg show IFNAME dump` as data, without the private key it prints."""
        text = self._tool([self.wg, "show", self.name, "dump"]).decode("utf-8", "replace")
        try:
            return parse_wg_dump(text)
        except ValueError as exc:
            raise InterfaceError(f"wg show {self.name} dump was unexpected: {exc}") from None

    def peers(self) -> dict[str, CurrentPeer]:
        return peers_of(self.dump())

    def server_address(self) -> str:
        """The interface's own IPv4 address (upstream's config gives it as a /32)."""
        out = self._tool([self.ip, "-o", "-4", "addr", "show", "dev", self.name])
        for line in out.decode("utf-8", "replace").splitlines():
            words = line.split()
            if "inet" in words:
                return str(ipaddress.ip_interface(words[words.index("inet") + 1]).ip)
        raise InterfaceError(f"{self.name} has no IPv4 address.")

    def host_addresses(self) -> set[str]:
        """Every IPv4 address of this host (its network namespace), any interface."""
        out = self._tool([self.ip, "-o", "-4", "addr", "show"])
        found = set()
        for line in out.decode("utf-8", "replace").splitlines():
            words = line.split()
            if "inet" in words:
                found.add(str(ipaddress.ip_interface(words[words.index("inet") + 1]).ip))
        return found

    def bring_up(self, config: Path, private_key: Path) -> None:
        """Create the interface with wg-quick from `config` (`<name>.conf`: address and
        port, no key, no hooks), then give it the key from the root-only key file, so the
        key is never copied into another file."""
        self._tool([require_tool("wg-quick"), "up", str(config)])
        self._tool([self.wg, "set", self.name, "private-key", str(private_key)])

    def ensure_route(self, subnet: str) -> None:
        """Route the whole VPN network into the interface. wg-quick adds a route per
        peer only when it brings the interface up; peers added later with `wg set` need
        this one (upstream's interface address is a /32)."""
        self._tool([self.ip, "route", "replace", subnet, "dev", self.name])

    def apply(self, plan: Plan) -> list[str]:
        """BATCH peers per `wg set` (a first sync of 10,000 devices is 50 commands, not
        10,000). A failed batch is done again one peer at a time, so one bad peer fails
        alone: its error is logged and returned, and every other step still runs."""
        failed = []
        for argv in plan.commands(self.wg, self.name, batch=BATCH):
            try:
                self._tool(argv)
            except FiotrayError:
                for single in _one_per_peer(argv):
                    try:
                        self._tool(single)
                    except FiotrayError as exc:
                        log.warning("%s", exc)
                        failed.append(str(exc))
        return failed


def _one_per_peer(argv: list[str]) -> list[list[str]]:
    """`wg set IF peer A ... peer B ...` as one command per peer clause."""
    head, clauses = argv[:3], []
    for word in argv[3:]:
        if word == "peer":
            clauses.append([word])
        else:
            clauses[-1].append(word)
    return [head + clause for clause in clauses]
