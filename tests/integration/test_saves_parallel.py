"""Saves side by side lose nothing, and no secret is left without its owner: real
`fiotray` processes (the CLI, and the tray's own backend) against a private Secret
Service (gnome-keyring on its own D-Bus session)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fiotray.core import wgconf
from fiotray.core.secrets import SecretStore, tunnel_key
from tests.user_config import cli_env

pytestmark = pytest.mark.real

ROUNDS = 12  # per process; unlocked saves lost about 3 in 100, so 2 x 12 rarely pass by luck


@pytest.fixture
def env(tmp_path, secret_service) -> dict[str, str]:
    return cli_env(tmp_path, secret_service.bus_address, QT_QPA_PLATFORM="offscreen")


def _conf(tmp_path: Path, n: int) -> Path:
    path = tmp_path / f"c{n}.conf"
    key = wgconf.generate_private_key()
    path.write_text(
        f"[Interface]\nPrivateKey = {key}\nAddress = 10.9.{n // 200}.{n % 200 + 1}/32\n\n"
        f"[Peer]\nPublicKey = {wgconf.public_key(wgconf.generate_private_key())}\n"
        "Endpoint = 192.0.2.1:51820\nAllowedIPs = 10.9.0.0/16\n"
    )
    return path


def _cli_loop(env: dict[str, str], argvs: list[list[str]], stdin: str = "") -> subprocess.Popen:
    """One shell running the given fiotray commands one after the other; each command
    prints OK-<n> on success, so the successes are counted, not assumed."""
    lines = []
    for n, argv in enumerate(argvs):
        quoted = " ".join(f"'{a}'" for a in argv)
        feed = f"printf %s '{stdin}' | " if stdin else ""
        lines.append(f"{feed}{sys.executable} -m fiotray {quoted} >/dev/null && echo OK-{n}")
    return subprocess.Popen(
        ["sh", "-c", "\n".join(lines)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _successes(proc: subprocess.Popen) -> int:
    out, err = proc.communicate(timeout=300)
    ok = sum(line.startswith("OK-") for line in out.splitlines())
    if err.strip():
        print(err[-2000:])  # shown when the count is wrong
    return ok


def _tunnel_names(env: dict[str, str]) -> set[str]:
    listed = subprocess.run(
        [sys.executable, "-m", "fiotray", "tunnels", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return {t["name"] for t in json.loads(listed.stdout)}


def _keyring(secret_service, monkeypatch) -> SecretStore:
    secret_service.activate(monkeypatch)
    return SecretStore()


def test_two_cli_imports_side_by_side_keep_every_tunnel_and_key(
    env, tmp_path, secret_service, monkeypatch
):
    confs = [_conf(tmp_path, n) for n in range(2 * ROUNDS)]
    a = _cli_loop(
        env,
        [["tunnels", "import", str(c), "--name", f"a{n}"] for n, c in enumerate(confs[:ROUNDS])],
    )
    b = _cli_loop(
        env,
        [["tunnels", "import", str(c), "--name", f"b{n}"] for n, c in enumerate(confs[ROUNDS:])],
    )
    assert (_successes(a), _successes(b)) == (ROUNDS, ROUNDS)
    names = _tunnel_names(env)
    wanted = {f"a{n}" for n in range(ROUNDS)} | {f"b{n}" for n in range(ROUNDS)}
    assert names == wanted, f"lost: {sorted(wanted - names)}"
    keyring = _keyring(secret_service, monkeypatch)
    assert all(keyring.get(tunnel_key(n)) for n in wanted)
    index = json.loads((tmp_path / "config" / "fiotray" / "keyring-entries.json").read_text())
    assert set(index["keys"]) == {tunnel_key(n) for n in wanted}


def test_the_tray_and_the_cli_saving_side_by_side_lose_nothing(env, tmp_path):
    """The tray's own backend adds tunnels while the CLI does."""
    confs = [_conf(tmp_path, n) for n in range(2 * ROUNDS)]
    cli = _cli_loop(
        env,
        [["tunnels", "import", str(c), "--name", f"c{n}"] for n, c in enumerate(confs[:ROUNDS])],
    )
    tray_script = textwrap.dedent(
        f"""
        import asyncio
        from pathlib import Path
        from PySide6.QtWidgets import QApplication
        import qasync
        from fiotray.core.services import user_services
        from fiotray.gui.backend import Backend

        app = QApplication([])
        loop = qasync.QEventLoop(app)
        asyncio.set_event_loop(loop)
        confs = {[str(c) for c in confs[ROUNDS:]]!r}

        async def main():
            backend = Backend(user_services())
            for n, conf in enumerate(confs):
                await backend.import_tunnel(Path(conf), "t" + str(n))
                print("OK-" + str(n), flush=True)
            await backend.shutdown()

        with loop:
            loop.run_until_complete(main())
        """
    )
    tray = subprocess.Popen(
        [sys.executable, "-c", tray_script],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert (_successes(cli), _successes(tray)) == (ROUNDS, ROUNDS)
    names = _tunnel_names(env)
    wanted = {f"c{n}" for n in range(ROUNDS)} | {f"t{n}" for n in range(ROUNDS)}
    assert names == wanted, f"lost: {sorted(wanted - names)}"


def test_secrets_left_without_an_owner_are_reported_and_removed(
    env, tmp_path, secret_service, monkeypatch
):
    """A crash between the two saves of an older fiotray, or a hand-edited file: the
    keyring holds secrets nothing names. Every command says so; logout and tunnel
    removal clean them up."""
    keyring = _keyring(secret_service, monkeypatch)
    index = tmp_path / "config" / "fiotray" / "keyring-entries.json"
    store = SecretStore(index=index)
    store.set("tunnel/ghost/private_key", wgconf.generate_private_key())
    store.set("profile/gone-factory/api_token", "par-orphan-token")

    def fiotray(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "fiotray", *args], env=env, capture_output=True, text=True
        )

    status = fiotray("status")
    assert status.returncode == 0, status.stderr
    assert "2 secret(s) in the keyring belong to no factory or tunnel" in status.stderr
    assert "fiotray logout --factory gone-factory" in status.stderr
    assert "fiotray tunnels remove ghost" in status.stderr
    assert "par-orphan-token" not in status.stderr + status.stdout

    removed = fiotray("tunnels", "remove", "ghost")
    assert removed.returncode == 0 and "left without a tunnel" in removed.stdout
    out = fiotray("logout", "--factory", "gone-factory")
    assert out.returncode == 0 and "Removed 1 secret(s) of gone-factory" in out.stdout
    assert keyring.get("tunnel/ghost/private_key") is None
    assert keyring.get("profile/gone-factory/api_token") is None
    status = fiotray("status")
    assert status.stderr == "", status.stderr
    # Nothing left to clean: the usual refusal.
    again = fiotray("logout", "--factory", "gone-factory")
    assert again.returncode == 1 and "no factory gone-factory" in again.stderr
