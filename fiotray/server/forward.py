"""`--forward`: engineers reach devices straight over the tunnel (the `direct` SSH route,
any device port), not only through the server as a jump host.

A device takes tunnel traffic only from the server's VPN address (its one peer is the
server, AllowedIPs = server_address), so traffic from a laptop to a device is forwarded
by the server and masqueraded out of the WireGuard interface as the server's address.
Upstream meant to do this but masquerades out of an interface named `TODO`. The rules
carry a comment naming fiotray-server, are added once, and are removed on exit, as is
the ip_forward setting the daemon changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from fiotray.core.errors import FiotrayError
from fiotray.server.interface import Runner, run_bounded
from fiotray.wg.tools import find_tool, last_error_line

log = logging.getLogger(__name__)
TAG = "fiotray-server"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


class ForwardError(FiotrayError):
    default_code = "forward"


@dataclass
class Forwarding:
    interface: str
    run: Runner = run_bounded
    sysctl: bool = True  # False: --no-sysctl, ip_forward is the admin's
    ip_forward: Path = IP_FORWARD
    _iptables: str | None = None
    _old_forward: str | None = None

    def rules(self) -> list[list[str]]:
        """(table, chain, match...) of each rule, as iptables takes them after -A/-C/-D."""
        tag = ["-m", "comment", "--comment", TAG]
        return [
            ["-t", "nat", "POSTROUTING", "-o", self.interface, *tag, "-j", "MASQUERADE"],
            [
                "-t",
                "filter",
                "FORWARD",
                "-i",
                self.interface,
                "-o",
                self.interface,
                *tag,
                "-j",
                "ACCEPT",
            ],
        ]

    def _binary(self) -> str:
        # Debian 12's iptables is the nftables one; the others where that is what works.
        if self._iptables is None:
            for name in ("iptables", "iptables-nft", "iptables-legacy"):
                path = find_tool(name)
                if path and self.run([path, "-w", "-t", "nat", "-S"]).returncode == 0:
                    self._iptables = path
                    break
            else:
                raise ForwardError("No working iptables (Debian package iptables) for --forward.")
        return self._iptables

    def _iptables_step(self, op: str, rule: list[str]) -> int:
        table, chain, *match = rule[1], rule[2], *rule[3:]
        argv = [self._binary(), "-w", "-t", table, op, chain, *match]
        result = self.run(argv)
        if op != "-C" and result.returncode != 0:
            detail = last_error_line(result.stderr, [])
            raise ForwardError(f"iptables {op} {chain} failed: {detail}")
        return result.returncode

    def enable(self) -> None:
        for rule in self.rules():
            if self._iptables_step("-C", rule) != 0:
                self._iptables_step("-A", rule)
        if self.sysctl:
            self._old_forward = self.ip_forward.read_text().strip()
            if self._old_forward != "1":
                self.ip_forward.write_text("1\n")
        log.info("forwarding engineers' traffic to devices through %s", self.interface)

    def disable(self) -> None:
        """Remove the rules (also ones a killed daemon left) and restore ip_forward."""
        for rule in self.rules():
            while self._iptables_step("-C", rule) == 0:
                self._iptables_step("-D", rule)
        if self.sysctl and self._old_forward is not None and self._old_forward != "1":
            self.ip_forward.write_text(self._old_forward + "\n")
        self._old_forward = None
