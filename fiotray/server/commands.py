"""What `fiotray-server peers` and `status` do."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from fiotray.core import format as fmt
from fiotray.core import wgconf
from fiotray.core.errors import FiotrayError
from fiotray.server.engineers import Engineer, EngineerStore
from fiotray.server.interface import WgInterface
from fiotray.server.peers import WantedPeer
from fiotray.server.sync import Plan


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2))


def _store(args: argparse.Namespace) -> EngineerStore:
    return EngineerStore(args.state_dir / "engineers.json")


def peers(args: argparse.Namespace, ifname: str, intf: WgInterface | None = None) -> int:
    store = _store(args)
    requested = _requested(args)
    if args.peers_command == "list":
        revoked = store.revoked()
        rows = [
            {"name": e.name, "public_key": e.public_key, "address": e.address, "source": e.source}
            for e in store.list()
        ] + [
            {"name": e.name, "public_key": e.public_key, "address": e.address, "source": "self"}
            for e in requested
        ]
        rows += [
            {"name": name, "public_key": key, "address": None, "source": "revoked"}
            for key, name in sorted(revoked.items(), key=lambda kv: kv[1])
        ]
        if args.json:
            print_json(rows)
        else:
            for r in rows:
                print(f"{r['name']}\t{r['address'] or '-'}\t{r['public_key']}\t{r['source']}")
        return 0
    intf = intf or WgInterface(ifname)
    if args.peers_command == "add":
        server_address = intf.server_address()
        known = {e.public_key for e in store.list()}
        devices = [
            (p.allowed_ips[0].split("/")[0], key)
            for key, p in intf.peers().items()
            if key not in known and p.allowed_ips
        ]
        engineer = store.add(
            args.name,
            args.public_key,
            server_address=server_address,
            address=args.address,
            devices=devices,
        )
        intf.ensure_route(str(wgconf.vpn_subnet(server_address)))
        peer = WantedPeer(engineer.public_key, engineer.address, engineer.name, "engineer")
        failed = intf.apply(Plan(add=[peer]))
        print(
            f"Admitted {engineer.name} at {engineer.address}"
            + (f" (not applied: {failed[0]})" if failed else ".")
        )
        return 1 if failed else 0
    engineer = store.remove(args.name, requested=requested)
    failed = intf.apply(Plan(remove=[engineer.public_key]))
    print(f"Revoked {engineer.name}" + (f" (not applied: {failed[0]})" if failed else "."))
    return 1 if failed else 0


def status(args: argparse.Namespace, ifname: str, intf: WgInterface | None = None) -> int:
    intf = intf or WgInterface(ifname)
    engineers = {e.public_key: e for e in [*_store(args).list(), *_requested(args)]}
    dump = intf.dump()
    now = time.time()
    rows = []
    for raw in dump["peers"]:  # type: ignore[attr-defined]
        key = raw["public_key"]
        engineer = engineers.get(key)
        handshake = raw["latest_handshake"]
        rows.append(
            {
                "public_key": key,
                "kind": "engineer" if engineer else "device",
                "name": engineer.name if engineer else None,
                "source": engineer.source if engineer else None,
                "allowed_ips": raw["allowed_ips"],
                "latest_handshake": handshake or None,
                "rx_bytes": raw["rx_bytes"],
                "tx_bytes": raw["tx_bytes"],
            }
        )
    daemon_state = _daemon_state(args)
    if args.json:
        print_json({"interface": ifname, "peers": rows, "daemon": daemon_state})
        return 0
    if daemon_state:
        last = daemon_state.get("last_sync") or {}
        synced = fmt.ago(now - last["at"]) if last.get("at") else "never"
        print(f"last sync: {synced}, {last.get('peers', 0)} peers wanted")
        for refused in last.get("refused", []):
            print(f"refused: {refused['kind']} {refused['name']}: {refused['reason']}")
        if daemon_state.get("last_error"):
            print(f"last error: {daemon_state['last_error']}")
    for r in rows:
        age = fmt.ago(now - r["latest_handshake"]) if r["latest_handshake"] else "never"
        print(
            f"{r['kind']}\t{r['name'] or '-'}\t{','.join(r['allowed_ips'])}\t{age}\t"
            f"{fmt.size(r['rx_bytes'])} in\t{fmt.size(r['tx_bytes'])} out\t{r['public_key']}"
        )
    return 0


def _requested(args: argparse.Namespace) -> list[Engineer]:
    """The self-service laptops the daemon admitted at its last sync."""
    last = (_daemon_state(args) or {}).get("last_sync") or {}
    out = []
    for r in last.get("requested") or []:
        try:
            out.append(Engineer(str(r["name"]), str(r["public_key"]), str(r["address"]), "self"))
        except (KeyError, TypeError):
            continue
    return out


def _daemon_state(args: argparse.Namespace) -> dict[str, Any] | None:
    """What the daemon last recorded (status.json), or None when it never ran."""
    path = args.state_dir / "status.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _api_token(args: argparse.Namespace) -> str:
    if args.apitoken_file is not None:
        try:
            token = args.apitoken_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise FiotrayError(f"Cannot read {args.apitoken_file}: {exc.strerror}.") from None
        if not token:
            raise FiotrayError(f"{args.apitoken_file} holds no token.")
        return token
    if args.apitoken:
        return str(args.apitoken)
    raise FiotrayError(
        "Give the API token (--apitoken-file FILE, or upstream's --apitoken) or upstream's "
        "OAuth creds file (--oauthcreds FILE)."
    )


def _credentials(args: argparse.Namespace) -> Any:
    if args.oauthcreds and args.apitoken_file is None:
        from fiotray.server.oauth import CredsFileCredentials, read_creds

        read_creds(Path(args.oauthcreds))  # there and usable, before the loop starts
        return CredsFileCredentials(Path(args.oauthcreds), args.oauth_url)
    from fiotray.core.auth import ApiTokenCredentials

    return ApiTokenCredentials(_api_token(args))


def _ask_code(factory: str, oauth_url: str, otherwise: str) -> str:
    """Upstream's sign-in: the authorize link printed, the code read from stdin."""
    from fiotray.server import oauth

    print("Visit this link to authorize this server:")
    print("  ", oauth.authorize_url(factory, oauth_url))
    print("Enter code: ", end="", flush=True)
    code = sys.stdin.readline().strip()
    if not code:
        raise FiotrayError(f"No code was entered; {otherwise}.")
    return code


def login(args: argparse.Namespace) -> int:
    """Upstream's authorization-code sign-in into the creds file: a link to visit, the
    code pasted back."""
    import asyncio

    from fiotray.core.api import new_http_client
    from fiotray.core.factories import validate_factory_name
    from fiotray.server import oauth

    if not args.factory or not args.oauthcreds:
        raise FiotrayError("login needs the factory (--factory) and the file (--oauthcreds).")
    factory = validate_factory_name(args.factory)
    code = _ask_code(factory, args.oauth_url, "nothing was saved")

    async def exchange() -> None:
        async with new_http_client() as http:
            await oauth.sign_in_with_code(
                http, factory, code, Path(args.oauthcreds), args.oauth_url
            )

    asyncio.run(exchange())
    print(f"Signed in; the token is in {args.oauthcreds} (0600).")
    return 0


def daemon(args: argparse.Namespace, ifname: str) -> int:
    """Sync until SIGTERM or SIGINT; 0 then. Failures on the way are logged, not fatal."""
    import asyncio
    import signal

    from fiotray.core.api import FactoryClient
    from fiotray.core.factories import validate_factory_name, validate_url
    from fiotray.server.daemon import Daemon

    if not args.factory:
        raise FiotrayError("The daemon needs the factory (--factory).")
    factory = validate_factory_name(args.factory)
    api_url = validate_url(args.api_url, "the API URL")
    credentials = _credentials(args)
    intf = WgInterface(ifname)
    key_file = Path(args.privatekey) if args.privatekey else None
    if not intf.exists() and key_file is None:
        raise FiotrayError(
            f"Interface {ifname} is not up: give the server's key (--privatekey FILE) to "
            "bring it up, or run enable first."
        )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with FactoryClient(api_url, factory, credentials) as api:
            await Daemon(
                factory=factory,
                api=api,
                interface=intf,
                engineers=_store(args),
                state_dir=args.state_dir,
                hosts_file=args.hosts_file,
                interval=args.interval,
                self_service=args.self_service,
                key_file=key_file,
            ).run(stop)

    forwarding = None
    if args.forward:
        from fiotray.server.forward import Forwarding

        forwarding = Forwarding(ifname, sysctl=not args.no_sysctl)
        forwarding.enable()
    try:
        asyncio.run(run())
    finally:
        if forwarding is not None:
            forwarding.disable()
    return 0


def enable(args: argparse.Namespace, ifname: str) -> int:
    """Upstream's `enable`: the key file (made when missing) and the factory's
    `wireguard-server` file; the daemon is fiotray-server's systemd unit."""
    import asyncio

    from fiotray.core.api import FactoryClient, new_http_client
    from fiotray.core.factories import validate_factory_name, validate_url
    from fiotray.server import oauth, setup

    if not args.factory or not args.privatekey:
        raise FiotrayError("enable needs the factory (--factory) and the key file (--privatekey).")
    factory = validate_factory_name(args.factory)
    api_url = validate_url(args.api_url, "the API URL")
    intf = WgInterface(ifname)
    endpoint = args.endpoint or asyncio.run(_probe_external_ip())
    vpnaddr = setup.check_enable(endpoint, args.port, args.vpnaddr, intf, not args.no_check_ip)
    print(f"External endpoint: {endpoint}:{args.port}")
    print(f"VPN address: {vpnaddr}")
    key, made = setup.private_key(Path(args.privatekey))
    if made:
        print(f"Made the server's private key: {args.privatekey} (0600).")
    file = setup.server_file(endpoint, args.port, vpnaddr, wgconf.public_key(key))

    creds_path = Path(args.oauthcreds) if args.oauthcreds else None
    code = None
    if creds_path is not None and args.apitoken_file is None and not creds_path.exists():
        # As upstream: the pasted code buys a 90 s read-update token for this change, and
        # the daemon's long-lived read-only token for the creds file.
        code = _ask_code(factory, args.oauth_url, "nothing was changed")

    async def register() -> None:
        credentials: Any
        if code is not None:
            async with new_http_client() as http:
                token = await oauth.update_token_with_code(http, factory, code, args.oauth_url)
            credentials = oauth.BearerToken(token)
        else:
            credentials = _credentials(args)
        async with FactoryClient(api_url, factory, credentials) as api:
            await api.patch_factory_config(setup.ENABLE_REASON, [file])

    print("Registering with the factory...")
    asyncio.run(register())
    print(f"Registered: devices of {factory} now use {endpoint}:{args.port}.")
    if code is not None and creds_path is not None:

        async def keep_token() -> None:
            async with new_http_client() as http:
                await oauth.sign_in_with_code(http, factory, code, creds_path, args.oauth_url)

        try:
            asyncio.run(keep_token())
            print(f"The daemon's token is in {creds_path} (0600).")
        except FiotrayError:
            print(
                "The code could not be used twice: sign the daemon in with "
                f"`fiotray-server -f {factory} -a {creds_path} login`."
            )
    print(
        "Start the daemon: set the options in /etc/default/fiotray-server, then "
        "`systemctl enable --now fiotray-server`."
    )
    return 0


async def _probe_external_ip() -> str:
    """This host's public address as the world sees it (upstream asks api.ipify.org)."""
    import httpx

    from fiotray.core.api import new_http_client

    try:
        async with new_http_client(timeout=10.0) as http:
            resp = await http.get("https://api.ipify.org")
            resp.raise_for_status()
            text = resp.text.strip()
    except httpx.HTTPError:
        raise FiotrayError(
            "Could not ask api.ipify.org for this host's public address: give it (--endpoint)."
        ) from None
    return text
