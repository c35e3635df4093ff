"""What a model reads about the tools as a whole: the server's instructions (sent when a
client connects) and the longer guide, a resource it may read when it needs to."""

INSTRUCTIONS = (
    "fiotray reaches the user's FoundriesFactory devices over the factory's WireGuard VPN. "
    "Find devices with list_foundries_devices (filters and a limit: factories are large), "
    "check the laptop's tunnel with foundries_vpn_status, and connect it with "
    "connect_foundries_vpn before SSH over the jump or direct route. VPN changes on a "
    "device are pending until the device applies them (up to about 5 minutes). Connecting, "
    "disconnecting and VPN changes act on real systems: say what you will do first. "
    "The resource fiotray://guide explains routes, pending changes and errors."
)

GUIDE = """\
# fiotray tools: a short guide

## The pieces
- A **factory** has devices and one VPN server (factory-wireguard-server). Devices talk
  to the VPN server only; this laptop reaches them through its **tunnel** to the server.
- `foundries_vpn_status` says whether that tunnel is up. States: disconnected,
  connecting (first seconds), **waiting** (up, but the server has not admitted this
  laptop: its admin must add the laptop's public key; retrying does not help), connected,
  **stale** (the server does not answer: network, or the server is down), error.
- `connect_foundries_vpn` / `disconnect_foundries_vpn` go through a privileged helper
  with polkit: a password prompt may appear on the user's desktop. Tell the user first.

## Devices and VPN
- `list_foundries_devices` counts every match but lists only the first `limit`; narrow
  with `search`, `group`, `tag`, `target`, `online`, `vpn` rather than raising `limit`.
- `enable_foundries_vpn_device` / `disable_foundries_vpn_device` write the device's
  config in the factory as `fioctl devices config wireguard` does. The change is
  **pending** until the device's agent checks in and applies it (up to about 5 minutes;
  an offline device applies it when it comes back). Follow it with
  `foundries_device_vpn` (`pending: false` means applied), or pass `wait_seconds`:
  the call then follows the device until it applied the change and, for enable, answers
  over the VPN (`stage: reachable`), and says why it did not (`reason`).
- A device without a WireGuard public key has never registered one: VPN cannot be
  enabled until it does.

## SSH routes
- **jump** (the usual one): `ssh -J` through the VPN server over the tunnel. Needs the
  tunnel connected and an account on the server.
- **direct**: straight to the device's VPN address over the tunnel. Works only where the
  server's admin forwards with NAT; otherwise it times out.
- **public**: through the server's public SSH, without the tunnel (set up per tunnel).
- `foundries_ssh_command` gives the exact command without running it.
  `run_on_foundries_device` exists only when the user started the server with
  `--allow-commands`, and only for the devices they allowed; no password prompts, no
  terminal, a timeout and a cap on output.

## Errors
A tool error is one sentence that says what to do (the same the `fiotray` command line
prints): "sign in again" means the user must run `fiotray login`; "Tunnel X is down"
means connect first; "VPN is not enabled on D" means enable it and wait until applied.
"""
