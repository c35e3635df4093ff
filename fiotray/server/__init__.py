"""fiotray-server: the factory's VPN server daemon, a drop-in for upstream's
`factory-wireguard.py daemon` that admits engineers' laptops and never bounces a peer.

Qt-free; runs as root on the VPN server. Work in progress (issue 10): this package so
far holds the engineers' store and the peer planning (what the interface should have,
and the `wg set` steps from what it has), the parts the daemon loop is built on.
"""
