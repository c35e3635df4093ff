"""The API models' parsing, fuzzed: from any JSON value, each either parses to fields that
are safe to show or raises ApiError; never another exception, never a raw control char."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fiotray.core.errors import ApiError
from fiotray.core.models import ConfigEntry, ConfigFile, Device, WireguardIp, listed_record

# The keys the models read, so that generated objects reach past "not an object".
KEYS = [
    "name",
    "uuid",
    "owner",
    "factory",
    "device-group",
    "last-seen",
    "target-name",
    "status",
    "up-to-date",
    "tag",
    "ostree-hash",
    "lmp-ver",
    "docker-apps",
    "current-update",
    "is-prod",
    "is-wave",
    "public-key",
    "network-info",
    "hostname",
    "local_ipv4",
    "mac",
    "created-at",
    "applied-at",
    "created-by",
    "reason",
    "files",
    "value",
    "unencrypted",
    "on-changed",
    "ip",
    "enabled",
    "pubkey",
]

# Text with what a hostile server would put in it: escapes, C1, bidi, surrogates.
HOSTILE = st.sampled_from(["\x1b", "\x07", "\x7f", "\x9b", "\u202e", "\u2066", "\u061c", "\n"])
TEXT = st.lists(st.one_of(st.characters(), HOSTILE), max_size=12).map("".join)
TIMES = st.sampled_from(
    ["2024-03-01T10:00:00.123456789Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**30),
    st.floats(),
    TEXT,
    TIMES,
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), TEXT), inner, max_size=8),
    ),
    max_leaves=12,
)
# Objects that get past the required fields (a name, an ip, files), so that every other
# field's check is reached; any of those may be text, or any JSON value at all.
FIELD = st.one_of(TEXT, JSON)
OBJECTS = st.fixed_dictionaries(
    {
        "name": TEXT,
        "ip": TEXT,
        "files": st.lists(st.fixed_dictionaries({"name": TEXT, "value": TEXT}), max_size=2),
    },
    optional={k: FIELD for k in KEYS if k not in ("name", "ip", "files")},
)


def strings(value: object) -> list[str]:
    """Every str inside a parsed value (dataclass fields, tuples)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, tuple | list):
        return [s for v in value for s in strings(v)]
    slots = getattr(type(value), "__slots__", ())
    return [s for name in slots for s in strings(getattr(value, name))]


PARSERS = {
    "Device": Device.from_json,
    "listed_record": listed_record,
    "ConfigEntry": ConfigEntry.from_json,
    "WireguardIp": WireguardIp.from_json,
}


def check(raw: Any) -> None:
    for what, parse in PARSERS.items():
        try:
            parsed = parse(raw)
        except ApiError:
            continue
        if isinstance(parsed, Device):
            # Its public key, a PEM shown nowhere, is data kept as sent (see models).
            parsed = tuple(
                getattr(parsed, name) for name in Device.__slots__ if name != "public_key"
            )
        elif isinstance(parsed, ConfigEntry):
            # Its files' contents are data written back as sent (see models): not checked.
            assert all(isinstance(f, ConfigFile) for f in parsed.files)
            parsed = (parsed.created_at, parsed.applied_at, parsed.created_by, parsed.reason)
        for text in strings(parsed):
            assert text.isprintable(), (what, text)


# A fixed budget: the two tests take about 3 s together.
FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
    database=None,  # no .hypothesis directory left in the checkout
)


@FUZZ
@given(JSON)
def test_any_json_value_parses_or_is_an_api_error(raw):
    check(raw)


@FUZZ
@given(OBJECTS)
def test_objects_with_the_models_keys_parse_or_are_an_api_error(raw):
    check(raw)
