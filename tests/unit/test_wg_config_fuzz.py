"""Property-based fuzz of the privileged helper's config parser (fiotray.wg.config): any
input is either refused with a ConfigError or parsed into a config whose canonical text
holds only allow-listed keys and parses back to itself. A fixed budget of examples keeps
it to a few seconds."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fiotray.wg import config as c
from tests.unit.wgsamples import PRIV, PSK, PUB1, PUB2, VALID

# Budget: about 2 s each on the 2-core CI machine.
BUDGET = settings(
    max_examples=400,
    deadline=None,
    database=None,  # no example database kept between runs
    suppress_health_check=[HealthCheck.too_slow],
)
ALLOWED = {
    "PrivateKey", "Address", "ListenPort", "MTU", "DNS",
    "PublicKey", "PresharedKey", "Endpoint", "AllowedIPs", "PersistentKeepalive",
}  # fmt: skip
KEYS = [
    *sorted(ALLOWED),
    "PostUp", "PreUp", "PostDown", "PreDown", "Table", "SaveConfig", "FwMark",
    "postup", " PostUp", "Post Up", "Include",
]  # fmt: skip
VALUES = [
    PRIV, PUB1, PUB2, PSK, "10.42.42.7/32", "10.42.0.0/16, ::/0", "vpn.example.test:5555",
    "[::1]:51820", "25", "0", "65536", "1.1.1.1", "touch /tmp/pwned", "$(id)", "`id`",
    "a\\\\b", "x; rm -rf /", "%i", "10.0.0.1/33", "", "=", "\\t", "\\u202e", "é",
]  # fmt: skip


def _check(data: bytes) -> None:
    try:
        parsed = c.parse_config_bytes(data)
    except c.ConfigError:
        return  # refused, with a reason: fine
    text = c.render_config(parsed)
    keys = set(re.findall(r"^(\w+) = ", text, re.M))
    assert keys <= ALLOWED, keys
    assert all(line.isprintable() for line in text.splitlines())
    assert c.parse_config(text) == parsed  # canonical: parses back to itself


@BUDGET
@given(st.binary(max_size=600))
def test_arbitrary_bytes_are_refused_or_parsed_into_allow_listed_keys(data: bytes) -> None:
    _check(data)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    lines = VALID.splitlines()
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(lines)))
        choice = draw(st.integers(0, 3))
        if choice == 0:
            line = f"{draw(st.sampled_from(KEYS))} = {draw(st.sampled_from(VALUES))}"
        elif choice == 1:
            line = draw(st.sampled_from(["[Interface]", "[Peer]", "[peer]", "[Interface", "#"]))
        elif choice == 2:
            line = draw(st.text(max_size=40))
        else:
            line = f"{draw(st.sampled_from(KEYS))}{draw(st.sampled_from(['=', ' =', '==', ' : ']))}"
            line += draw(st.text(max_size=20))
        lines.insert(at, line)
    sep = draw(st.sampled_from(["\n", "\r\n", "\n\n"]))
    return sep.join(lines).encode("utf-8", "surrogatepass")


@BUDGET
@given(_mutated())
def test_a_valid_config_with_hostile_lines_is_refused_or_stays_allow_listed(data: bytes) -> None:
    _check(data)


def test_a_hook_is_never_accepted_anywhere():
    for key in ("PostUp", "PreUp", "PostDown", "PreDown"):
        for section in ("[Interface]", "[Peer]"):
            text = VALID.replace(section, f"{section}\n{key} = touch /tmp/pwned", 1)
            try:
                c.parse_config(text)
            except c.ConfigError as exc:
                assert key in str(exc)
            else:
                raise AssertionError(f"{key} in {section} was accepted")
