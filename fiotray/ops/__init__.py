"""Every workflow of fiotray, once: the CLI, the GUI backend and the MCP server call these.

Each module is a set of Qt-free async functions over a `fiotray.core.services.Services`,
returning dataclasses (or the core's own frozen records): no printing, no argv, no
widgets. A front end turns the result into text, JSON, a menu or a dialog, and a
`FiotrayError` (with its `code`) into its own way of saying what failed.

- `accounts`: sign in (API token, OAuth2 client credentials, fioctl's file), sign out,
  the signed-in factories.
- `devices`: the device list (with selectors), a device's VPN state, enable/disable VPN
  on one device or many (bounded, per-device results, a plan with skip reasons),
  favourites, which actions apply to a device and why not (as data).
- `tunnels`: add a Foundries tunnel, import a `.conf`, remove, the default tunnel, a
  tunnel's SSH settings, connect, disconnect, status.
- `ssh`: the SSH command for a device with the user's settings applied, opening it in
  a terminal, the ssh config file for every VPN-enabled device, one command run on a
  device unattended (a timeout, an output cap, no prompt).
"""
