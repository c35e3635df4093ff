#!/usr/bin/env python3
"""Write fiotray(1) and fiotray-server(8) from their own argparse parsers, so the man pages
cannot drift from the programs.

Usage: python packaging/manpage.py > fiotray.1   (run with fiotray importable)
       python packaging/manpage.py --server > fiotray-server.8

The command and option lists come from fiotray.cli.build_parser() and
fiotray.server.cli.build_parser(), with each fiotray command's description, examples and
exit codes (fiotray's exit codes are fiotray.cli.output.EXIT_CODES); the prose around them
(what the program does, files, the server's exit codes) is kept here and is short on
purpose: the README has the long form.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fiotray import __version__
from fiotray.cli.output import EXIT_CODES

DESCRIPTION = """\
fiotray gives engineers one-click access to their FoundriesFactory devices over the
factory's WireGuard VPN: sign in to a factory, list every device with its online and VPN
state, enable or disable VPN on a device (with the result `fioctl devices config
wireguard DEVICE enable|disable` gives), bring the laptop's WireGuard tunnel up and down
without running anything as root, and open SSH to a device.
.PP
Without a command, fiotray starts the tray icon and the devices window (with
.B \\-\\-hidden
the tray icon only, as the autostart entry does). A second launch brings the running one
forward. Every tray action is also a command below.
.PP
Tunnels go up and down through a small privileged helper,
.IR /usr/libexec/fiotray/fiotray-helper ,
started with
.BR pkexec (1).
It re-validates every config it is given and refuses
.BR PreUp ,
.BR PostUp ,
.BR PreDown ,
.B PostDown
and anything else wg-quick would run as a shell command."""

FILES = [
    ("~/.config/fiotray/", "profiles.json, tunnels and settings (no secrets)."),
    ("~/.config/fiotray/ssh/FACTORY.conf", "written by ssh-config."),
    ("~/.local/state/fiotray/fiotray.log", "the tray app's log."),
    ("~/.config/autostart/fiotray.desktop", "the user's autostart entry (or its override)."),
    ("/etc/xdg/autostart/fiotray.desktop", "the system-wide autostart entry (hidden, delayed)."),
    ("/usr/share/polkit-1/actions/io.foundries.fiotray.policy", "the helper's polkit actions."),
    (
        "/usr/share/fiotray/polkit/49-fiotray-group.rules",
        "copy to /etc/polkit-1/rules.d/ to let the group fiotray connect without a password.",
    ),
]

# fiotray's exit codes: the list its help texts are made from.
EXIT = [(str(code), text) for code, text in EXIT_CODES.items()]


SERVER_DESCRIPTION = """\
fiotray\\-server keeps a FoundriesFactory's WireGuard VPN server in step with the factory:
every device with VPN enabled, and every engineer's laptop admitted with
.BR "peers add" ,
is a peer of the server's interface. A changed peer is one
.BR "wg set" ;
the interface is never taken down, so every other peer keeps its session.
.PP
It replaces Foundries' factory\\-wireguard.py daemon and takes the same global options,
so an upstream unit's options carry over as they are.
.PP
The Debian package installs the daemon as the systemd unit
.BR fiotray\\-server.service ,
disabled. Set its options in
.IR /etc/default/fiotray\\-server ,
then run
.BR "systemctl enable \\-\\-now fiotray\\-server" .
Give credentials as files (\\fB\\-a\\fR \\fIFILE\\fR, or the daemon's
\\fB\\-\\-apitoken\\-file\\fR \\fIFILE\\fR), never as \\fB\\-t\\fR \\fITOKEN\\fR in a unit:
a command line is readable by every user of the server."""

SERVER_FILES = [
    (
        "/etc/default/fiotray-server",
        "the unit's options: FIOTRAY_SERVER_OPTIONS (global) and FIOTRAY_DAEMON_OPTIONS "
        "(the daemon's). Root only (0600).",
    ),
    ("/lib/systemd/system/fiotray-server.service", "the unit (installed disabled)."),
    (
        "/etc/fiotray-server/",
        "root-only (0700) place for the creds file, token file and private key. "
        "Removed with the package's purge.",
    ),
    (
        "/var/lib/fiotray-server/",
        "state (0700): engineers.json (the admitted laptops) and status.json (the daemon's "
        "last sync, read by status). Removed with the package's purge.",
    ),
    ("/etc/hosts", "the factory's block of host names, as upstream writes it (--hosts-file)."),
]

SERVER_EXIT = [
    ("0", "success; the daemon after SIGTERM or SIGINT"),
    ("1", "failure (one line on standard error)"),
    ("2", "usage error"),
]


@dataclass(frozen=True)
class Page:
    """One man page: the parts that are prose; the options and commands come from `parser`."""

    name: str
    section: int
    manual: str
    summary: str
    synopsis: list[str]
    description: str
    parser: Callable[[], argparse.ArgumentParser]
    exit: list[tuple[str, str]]
    files: list[tuple[str, str]]
    environment: list[str]  # roff
    see_also: list[str]  # roff


def _fiotray_parser() -> argparse.ArgumentParser:
    from fiotray.cli import build_parser

    return build_parser()


def _server_parser() -> argparse.ArgumentParser:
    from fiotray.server.cli import build_parser

    return build_parser()


CA_ENV = [
    ".TP",
    "\\fBCACERT\\fR, \\fBSSL_CERT_FILE\\fR",
    "a private CA for a self\\-hosted factory (TLS is always verified).",
]

FIOTRAY = Page(
    name="fiotray",
    section=1,
    manual="User Commands",
    summary="FoundriesFactory devices over the factory VPN, from the tray or the shell",
    synopsis=[
        ".B fiotray",
        "[\\fB\\-\\-demo\\fR] [\\fB\\-\\-hidden\\fR] [\\fB\\-v\\fR]",
        ".br",
        ".B fiotray",
        "[\\fB\\-\\-demo\\fR] \\fICOMMAND\\fR [\\fIoptions\\fR]",
    ],
    description=DESCRIPTION,
    parser=_fiotray_parser,
    exit=EXIT,
    files=FILES,
    environment=[
        *CA_ENV,
        ".TP",
        "\\fBTERMINAL\\fR",
        "the terminal for \\fBssh \\-\\-terminal\\fR when none is set in the settings.",
        ".TP",
        "\\fBFIOTRAY_ICONS\\fR",
        "\\fBshipped\\fR or \\fBtheme\\fR: which tray icons to use.",
    ],
    see_also=[
        ".BR fioctl (1),",
        ".BR wg (8),",
        ".BR wg\\-quick (8),",
        ".BR pkexec (1),",
        ".BR ssh (1)",
    ],
)

SERVER = Page(
    name="fiotray-server",
    section=8,
    manual="System Administration",
    summary="the FoundriesFactory VPN server's daemon: devices and engineers as WireGuard peers",
    synopsis=[
        ".B fiotray\\-server",
        "[\\fIglobal options\\fR] \\fICOMMAND\\fR [\\fIoptions\\fR]",
    ],
    description=SERVER_DESCRIPTION,
    parser=_server_parser,
    exit=SERVER_EXIT,
    files=SERVER_FILES,
    environment=CA_ENV,
    see_also=[
        ".BR fioctl (1),",
        ".BR fiotray (1),",
        ".BR wg (8),",
        ".BR iptables (8),",
        ".BR systemctl (1),",
        ".BR journalctl (1)",
    ],
)


def esc(text: str) -> str:
    """Roff-safe text: backslashes and hyphens escaped, no line starting with a dot."""
    text = text.replace("\\", "\\\\").replace("-", "\\-")
    return "\n".join("\\&" + ln if ln.startswith((".", "'")) else ln for ln in text.splitlines())


def prose(text: str) -> str:
    """Roff-safe text, with `code` in bold (a help text's backquotes)."""
    return re.sub(r"`([^`]*)`", r"\\fB\1\\fR", esc(text))


def or_list(items: list[str]) -> str:
    return ", ".join(items[:-1]) + " or " + items[-1] if len(items) > 1 else "".join(items)


def option_lines(parser: argparse.ArgumentParser) -> list[str]:
    out: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
            continue
        if action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            metavar = ""
            if action.nargs != 0:
                metavar = " " + (
                    action.metavar
                    or (
                        "{" + ",".join(map(str, action.choices)) + "}"
                        if action.choices
                        else action.dest.upper()
                    )
                )
            flags = ", ".join(f"\\fB{esc(o)}\\fR{esc(metavar)}" for o in action.option_strings)
        else:
            flags = f"\\fI{esc(str(action.metavar or action.dest.upper()))}\\fR"
        help_text = parser._get_formatter()._expand_help(action) if action.help else ""
        out += [".TP", flags, prose(help_text)]
    return out


def subcommands(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> list[tuple[str, str, argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                if name not in helps:
                    continue  # an alias (profiles for tunnels): documented under its name
                full = f"{prefix}{name}"
                found.append((full, helps.get(name, ""), sub))
                found += subcommands(sub, full + " ")
    return found


def command_parts(parser: argparse.ArgumentParser) -> list[str]:
    """A command's examples and exit codes, as its --help gives them (fiotray's commands)."""
    out: list[str] = []
    examples = getattr(parser, "examples", ())
    if examples:
        out += [".PP", "Examples:", ".RS", ".nf", *map(esc, examples), ".fi", ".RE"]
    codes = getattr(parser, "exit_codes", ())
    if codes:
        note = getattr(parser, "exit_note", "")
        text = f"Exit status: {or_list([str(c) for c in codes])}"
        out += [".PP", esc(text + (f"; {note}" if note else "") + " (see EXIT STATUS).")]
    return out


def usage(parser: argparse.ArgumentParser) -> str:
    text = " ".join(parser.format_usage().split())
    return text.removeprefix("usage: ")


def render(page: Page = FIOTRAY) -> str:
    parser = page.parser()
    # The build's date, or SOURCE_DATE_EPOCH's for a reproducible package.
    stamp = datetime.datetime.fromtimestamp(
        int(os.environ.get("SOURCE_DATE_EPOCH", "0") or 0) or datetime.datetime.now().timestamp(),
        tz=datetime.UTC,
    )
    title = f'"{stamp:%Y-%m-%d}" "{page.name} {__version__}" "{page.manual}"'
    lines = [
        f".TH {page.name.upper()} {page.section} {title}",
        ".SH NAME",
        f"{esc(page.name)} \\- {esc(page.summary)}",
        ".SH SYNOPSIS",
        *page.synopsis,
        ".SH DESCRIPTION",
        page.description,
        ".SH OPTIONS",
        *option_lines(parser),
        ".SH COMMANDS",
    ]
    for name, help_text, sub in subcommands(parser):
        lines += [
            f".SS {esc(name)}",
            prose(sub.description or help_text[:1].upper() + help_text[1:] + "."),
            ".PP",
            f"\\fB{esc(usage(sub))}\\fR",
        ]
        opts = option_lines(sub)
        if opts:
            lines += [".RS", *opts, ".RE"]
        lines += command_parts(sub)
    lines += [".SH EXIT STATUS"]
    for code, text in page.exit:
        lines += [".TP", f"\\fB{code}\\fR", prose(text)]
    lines += [".SH FILES"]
    for path, text in page.files:
        lines += [".TP", f"\\fI{esc(path)}\\fR", esc(text)]
    lines += [".SH ENVIRONMENT", *page.environment, ".SH SEE ALSO", *page.see_also, ""]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] not in ([], ["--server"]):
        sys.exit(__doc__)
    sys.stdout.write(render(SERVER if sys.argv[1:] == ["--server"] else FIOTRAY))
