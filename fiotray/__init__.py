"""fiotray: one-click access to FoundriesFactory devices over the factory WireGuard VPN."""

__version__ = "0.1.0"
