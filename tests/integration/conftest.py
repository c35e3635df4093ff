"""Integration tests: real daemons, users, network namespaces, polkit and X.

The fixtures are imported here, not registered for every suite: unit tests must not
pay for (or be able to request) any of them. Imported names are what pytest finds.
"""

from tests.engineer import engineer
from tests.keyring_session import (
    _secret_service_daemons,
    _secret_service_no_collection_daemons,
    secret_service,
    secret_service_factory,
    secret_service_no_collection,
)
from tests.polkit_session import polkit
from tests.system_user import app_user, device_user
from tests.vpn_world import clean_vpn_world, laptop_netns, vpn_world, vpn_world_factory
from tests.xsession import xsession

__all__ = [
    "_secret_service_daemons",
    "_secret_service_no_collection_daemons",
    "app_user",
    "clean_vpn_world",
    "device_user",
    "engineer",
    "laptop_netns",
    "polkit",
    "secret_service",
    "secret_service_factory",
    "secret_service_no_collection",
    "vpn_world",
    "vpn_world_factory",
    "xsession",
]
