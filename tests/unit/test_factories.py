"""FactoryStore file handling and the URL / factory name rules."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from fiotray.core.errors import SetupError
from fiotray.core.factories import (
    DEFAULT_API_URL,
    DEFAULT_OAUTH_URL,
    Factory,
    FactoryStore,
    api_url_from_oauth,
    validate_factory_name,
    validate_url,
)


@pytest.fixture
def store(tmp_path: Path) -> FactoryStore:
    return FactoryStore(tmp_path / "cfg" / "fiotray")


def oauth(factory: str, **kw: str) -> Factory:
    return Factory(factory=factory, auth="oauth", client_id=f"id-{factory}", **kw)


# -- round trip and defaults -------------------------------------------------------


def test_empty_store(store: FactoryStore) -> None:
    assert store.list() == []
    assert store.default_name() is None
    assert not store.path.exists()


def test_round_trip(store: FactoryStore) -> None:
    factory = Factory(
        factory="acme",
        auth="oauth",
        api_url="https://api.example.com/",
        oauth_url="https://app.example.com/oauth/",
        client_id="cid",
    )
    store.save(factory)

    again = FactoryStore(store.config_dir).get("acme")
    assert again == Factory(
        factory="acme",
        auth="oauth",
        api_url="https://api.example.com",
        oauth_url="https://app.example.com/oauth",
        client_id="cid",
    )
    assert again.name == "acme"
    assert Factory(factory="x", auth="token").api_url == DEFAULT_API_URL
    assert Factory(factory="x", auth="token").oauth_url == DEFAULT_OAUTH_URL


def test_file_format(store: FactoryStore) -> None:
    store.save(Factory(factory="tok", auth="token"))
    data = json.loads(store.path.read_text())
    assert data == {
        "version": 1,
        "default": "tok",
        "profiles": {
            "tok": {
                "auth": "token",
                "api_url": DEFAULT_API_URL,
                "oauth_url": DEFAULT_OAUTH_URL,
                "client_id": None,
            }
        },
    }


def test_default_uses_xdg_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    store = FactoryStore()
    assert store.path == tmp_path / "xdg" / "fiotray" / "profiles.json"
    store.save(Factory(factory="a", auth="token"))
    assert store.path.exists()


def test_first_factory_becomes_default_and_later_ones_do_not(store: FactoryStore) -> None:
    store.save(oauth("beta"))
    store.save(oauth("alpha"))
    assert store.default_name() == "beta"
    assert store.get().factory == "beta"
    assert [p.factory for p in store.list()] == ["alpha", "beta"]

    store.save(oauth("alpha"), make_default=True)
    assert store.get().factory == "alpha"
    store.set_default("beta")
    assert store.get().factory == "beta"


def test_saving_again_replaces(store: FactoryStore) -> None:
    store.save(oauth("acme"))
    store.save(Factory(factory="acme", auth="token"))
    assert store.get("acme").auth == "token"
    assert len(store.list()) == 1


def test_only_factory_is_used_without_default(store: FactoryStore) -> None:
    store.save(oauth("a"))
    store.save(oauth("b"))
    store.remove("a")  # was the default
    assert store.default_name() is None
    assert store.get().factory == "b"


def test_no_factory_error(store: FactoryStore) -> None:
    with pytest.raises(SetupError, match=r"no factory configured; run `fiotray login --factory"):
        store.get()


def test_ambiguous_without_default(store: FactoryStore) -> None:
    store.save(oauth("a"))
    store.save(oauth("c"))
    store.save(oauth("b"))
    store.remove("a")
    with pytest.raises(SetupError) as info:
        store.get()
    assert str(info.value) == (
        "several factories configured (b, c): pass --factory or set a default"
    )


def test_unknown_factory(store: FactoryStore) -> None:
    store.save(oauth("a"))
    with pytest.raises(SetupError, match="no factory zz configured"):
        store.get("zz")
    with pytest.raises(SetupError, match="no factory zz configured"):
        store.remove("zz")
    with pytest.raises(SetupError, match="no factory zz configured"):
        store.set_default("zz")
    assert store.default_name() == "a"


def test_remove_keeps_other_default(store: FactoryStore) -> None:
    store.save(oauth("a"))
    store.save(oauth("b"))
    store.remove("b")
    assert store.default_name() == "a"
    assert [p.factory for p in store.list()] == ["a"]


def test_invalid_factories_are_not_saved(store: FactoryStore) -> None:
    with pytest.raises(SetupError):
        store.save(Factory(factory="bad name", auth="token"))
    with pytest.raises(SetupError, match="auth"):
        store.save(Factory(factory="a", auth="password"))  # type: ignore[arg-type]
    with pytest.raises(SetupError, match="API URL"):
        store.save(Factory(factory="a", auth="token", api_url="ftp://x"))
    assert not store.path.exists()


# -- file safety ------------------------------------------------------------------


def test_modes(store: FactoryStore) -> None:
    store.config_dir.mkdir(parents=True, mode=0o755)
    os.chmod(store.config_dir, 0o755)  # noqa: S103 - the too-open dir save() must fix
    store.save(oauth("a"))
    assert stat.S_IMODE(store.config_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    # No temp files are left behind; the lock file stays, private too.
    assert sorted(p.name for p in store.config_dir.iterdir()) == [
        ".profiles.json.lock",
        "profiles.json",
    ]
    assert stat.S_IMODE((store.config_dir / ".profiles.json.lock").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON (line 1)"),
        ("[]", "top level is not an object"),
        ('{"version": 2, "profiles": {}}', "unsupported version 2"),
        ('{"version": 1, "profiles": []}', "'profiles' is not an object"),
        ('{"version": 1, "profiles": {"a": 3}}', "factory 'a' is not an object"),
        ('{"version": 1, "profiles": {"a": {"auth": "magic"}}}', "factory 'a'"),
        ('{"version": 1, "profiles": {"a b": {"auth": "token"}}}', "factory 'a b'"),
        ('{"version": 1, "profiles": {"a": {"auth": "token", "api_url": 5}}}', "api_url"),
        ('{"version": 1, "default": 3, "profiles": {}}', "'default' is not a string"),
    ],
)
def test_malformed_file_is_reported_and_kept(
    store: FactoryStore, content: str, problem: str
) -> None:
    store.config_dir.mkdir(parents=True)
    store.path.write_text(content)
    for action in (
        store.list,
        store.get,
        lambda: store.save(oauth("new")),
        lambda: store.remove("a"),
        lambda: store.set_default("a"),
    ):
        with pytest.raises(SetupError) as info:
            action()
        assert str(store.path) in str(info.value)
        assert problem in str(info.value)
    assert store.path.read_text() == content


def test_unreadable_file_is_reported(store: FactoryStore) -> None:
    store.config_dir.mkdir(parents=True)
    store.path.mkdir()  # a directory where the file should be
    with pytest.raises(SetupError, match="Cannot read"):
        store.list()


def test_dangling_default_is_ignored(store: FactoryStore) -> None:
    store.config_dir.mkdir(parents=True)
    store.path.write_text(
        json.dumps({"version": 1, "default": "gone", "profiles": {"a": {"auth": "token"}}})
    )
    assert store.default_name() is None
    assert store.get().factory == "a"


def test_no_secret_survives_a_rewrite(store: FactoryStore) -> None:
    # Even if someone puts a secret into the file by hand, fiotray drops it on rewrite.
    store.config_dir.mkdir(parents=True)
    store.path.write_text(
        json.dumps(
            {
                "version": 1,
                "default": "a",
                "profiles": {"a": {"auth": "oauth", "client_secret": "hunter2-secret"}},
            }
        )
    )
    store.save(oauth("b"))
    text = store.path.read_text()
    assert "hunter2-secret" not in text
    assert "client_secret" not in text
    assert set(json.loads(text)["profiles"]["a"]) == {"auth", "api_url", "oauth_url", "client_id"}


# -- validators -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "acme", "Acme-01", "x_y", "9lives", "a" * 64])
def test_valid_factory_names(name: str) -> None:
    assert validate_factory_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "-lead", "_lead", "has space", "a/b", "a.b", "a" * 65, "ünï", "a\n"]
)
def test_invalid_factory_names(name: str) -> None:
    with pytest.raises(SetupError):
        validate_factory_name(name)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.foundries.io", "https://api.foundries.io"),
        ("https://api.foundries.io/", "https://api.foundries.io"),
        ("https://app.foundries.io/oauth/", "https://app.foundries.io/oauth"),
        ("http://127.0.0.1:8443", "http://127.0.0.1:8443"),
        ("https://[::1]:9000/x", "https://[::1]:9000/x"),
    ],
)
def test_valid_urls(url: str, expected: str) -> None:
    assert validate_url(url, "API URL") == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "empty"),
        ("ftp://host", "https://"),
        ("api.foundries.io", "https://"),
        ("https://", "no host"),
        ("https://user:pw-secret@host/", "user name or password"),
        ("https://host/?token=abc-secret", "query or fragment"),
        ("https://host/#frag", "query or fragment"),
        ("https://host:99999/", "not a valid URL"),
        (" https://host", "spaces"),
        ("https://ho st/", "spaces"),
    ],
)
def test_invalid_urls(url: str, problem: str) -> None:
    with pytest.raises(SetupError) as info:
        validate_url(url, "API URL")
    assert problem in str(info.value)
    assert "API URL" in str(info.value)
    assert "secret" not in str(info.value)


@pytest.mark.parametrize(
    ("oauth_url", "api_url"),
    [
        ("https://app.foundries.io/oauth", "https://api.foundries.io"),
        ("https://app.foundries.io/oauth/", "https://api.foundries.io"),
        ("https://app.staging.example.com/oauth", "https://api.staging.example.com"),
        ("http://127.0.0.1:8080/oauth", "http://127.0.0.1:8080"),
        ("https://login.example.com:8443/oauth", "https://login.example.com:8443"),
        ("https://apps.example.com/oauth", "https://apps.example.com"),
        ("https://[::1]:9000/oauth", "https://[::1]:9000"),
    ],
)
def test_api_url_from_oauth(oauth_url: str, api_url: str) -> None:
    assert api_url_from_oauth(oauth_url) == api_url


def test_api_url_from_invalid_oauth_url() -> None:
    with pytest.raises(SetupError, match="OAuth URL"):
        api_url_from_oauth("not a url")


def test_an_unknown_factory_names_the_signed_in_ones_and_the_closest(store: FactoryStore) -> None:
    store.save(oauth("acme"))
    store.save(oauth("bravo"))
    with pytest.raises(SetupError) as info:
        store.get("acne")
    assert str(info.value) == (
        "no factory acne configured (signed in: acme, bravo); did you mean acme? "
        "Or sign in with `fiotray login --factory acne ...`"
    )
    with pytest.raises(SetupError) as info:
        store.get("zulu")
    assert str(info.value) == (
        "no factory zulu configured (signed in: acme, bravo); "
        "sign in with `fiotray login --factory zulu ...`"
    )
