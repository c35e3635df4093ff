"""fiotray-server: the factory's VPN server daemon, a drop-in for upstream's
`factory-wireguard.py daemon` that admits engineers' laptops and never bounces a peer.

Qt-free; runs as root on the VPN server. Work in progress (issue 10). Where to look:
`cli` and `commands` (the command line), `daemon` (the sync loop), `peers` (what the
interface should have), `sync` (the `wg set` steps from what it has), `interface` (the
`wg` and `ip` tools), `engineers` (the engineers' store), `hosts` (/etc/hosts).
"""
