"""The dialogs on the demo backend: validation, real flows against the fake factory, inline errors.

Async tests run on the qasync loop: they never start a nested Qt event loop
(no exec(), no qtbot.waitSignal); they await the dialog's task or a short sleep.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialog, QLabel, QLineEdit

from fiotray.core import wgconf
from fiotray.core.errors import SecretsUnavailable
from fiotray.core.secrets import _LOCKED_MSG, factory_key, tunnel_key
from fiotray.core.settings import SettingsStore
from fiotray.core.tunnels import TunnelStore
from fiotray.core.tunnelstate import State
from fiotray.demo.factory import DEMO_FACTORY
from fiotray.gui.dialogs.about import AboutDialog
from fiotray.gui.dialogs.add_tunnel import AddFoundriesTunnelDialog
from fiotray.gui.dialogs.help import HelpDialog
from fiotray.gui.dialogs.import_tunnel import ImportTunnelDialog
from fiotray.gui.dialogs.settings import SettingsDialog
from fiotray.gui.dialogs.sign_in import SignInDialog

CLIENT_ID = "fiotray-gui-test"
CLIENT_SECRET = "gui-client-secret-0123456789"


async def tick(seconds: float = 0.01) -> None:
    """Let the Qt loop (qasync) run queued events and zero-timers."""
    await asyncio.sleep(seconds)


async def settle(dialog) -> None:
    assert dialog.work is not None
    await asyncio.wait_for(asyncio.shield(dialog.work), timeout=10)
    await tick()


def demo_token(backend) -> str:
    token = backend.services.secrets.get(factory_key(DEMO_FACTORY, "api_token"))
    assert token
    return token


def without_tunnel(backend) -> None:
    """The demo factory with no tunnel yet: a factory has one tunnel at most."""
    backend.services.tunnels.remove(DEMO_FACTORY)


def point_at_fake(dlg, backend) -> None:
    """The sign-in dialog set for the fake factory on loopback, as for a self-hosted one."""
    dlg.set_advanced_open(True)
    dlg.api_url.setText(backend.fake_api.api_url)
    dlg.oauth_url.setText(backend.fake_api.oauth_url)


def opened(qtbot, dialog):
    qtbot.addWidget(dialog)
    dialog.open()
    return dialog


def conf_text(*extra: str) -> str:
    lines = [
        "[Interface]",
        f"PrivateKey = {wgconf.generate_private_key()}",
        "Address = 10.9.0.2/32",
        *extra,
        "",
        "[Peer]",
        f"PublicKey = {wgconf.public_key(wgconf.generate_private_key())}",
        "Endpoint = vpn.example.com:51820",
        "AllowedIPs = 10.9.0.0/24",
        "",
    ]
    return "\n".join(lines)


# -- sign in -------------------------------------------------------------------------------


async def test_sign_in_from_either_demo_is_for_real_with_the_usual_defaults(qtbot, backend):
    """The demo factory needs no sign-in: from --demo as from the automatic demo, the
    dialog is for the user's own factory, with the public defaults, never the demo's
    loopback API, and says that signing in leaves the demo."""
    from fiotray.core.factories import DEFAULT_API_URL, DEFAULT_OAUTH_URL

    demo_url = backend.factories()[0].api_url
    assert "127.0.0.1" in demo_url
    for auto in (False, True):  # --demo, then the automatic demo
        backend.services.auto_demo = auto
        dlg = opened(qtbot, SignInDialog(backend))
        for edit, default in ((dlg.api_url, DEFAULT_API_URL), (dlg.oauth_url, DEFAULT_OAUTH_URL)):
            assert edit.text() == "" and edit.placeholderText() == default
        assert not dlg.advanced.isVisibleTo(dlg)
        assert dlg.client_id.text() == ""
        texts = [w.text() for w in dlg.findChildren(QLabel)]
        assert not any(demo_url in t or "127.0.0.1" in t for t in texts)
        assert any("You are looking at the demo" in t and "leaves the demo" in t for t in texts)
        dlg.close()


async def test_sign_in_fields_and_validation(qtbot, own_backend):
    dlg = opened(qtbot, SignInDialog(own_backend))
    await tick()
    assert dlg.tabs.count() == 3
    assert dlg.token.echoMode() is QLineEdit.EchoMode.Password
    assert dlg.client_secret.echoMode() is QLineEdit.EchoMode.Password
    assert not dlg.ok_button.isEnabled()
    assert dlg.ok_button.isDefault()

    dlg.token_factory.setText("acme corp")
    dlg.token.setText("tok")
    assert not dlg.ok_button.isEnabled()
    assert dlg.message.property("kind") == "hint"
    assert "invalid" in dlg.message.text()

    dlg.token_factory.setText("acme")
    assert dlg.ok_button.isEnabled()
    assert dlg.message.isHidden()

    # A self-hosted factory's API, under Advanced: a URL of the right kind only.
    assert not dlg.advanced.isVisibleTo(dlg)
    dlg.advanced_toggle.click()
    assert dlg.advanced.isVisibleTo(dlg)
    dlg.api_url.setText("ftp://example.com")
    assert not dlg.ok_button.isEnabled()
    assert "https://" in dlg.message.text()
    dlg.api_url.setText(own_backend.fake_api.api_url)
    assert dlg.ok_button.isEnabled()

    # Application credentials: the factory may stay empty; the OAuth URL applies here only.
    dlg.tabs.setCurrentIndex(SignInDialog.CLIENT)
    assert not dlg.ok_button.isEnabled()
    dlg.client_id.setText("id")
    dlg.client_secret.setText("secret")
    assert dlg.ok_button.isEnabled()
    dlg.client_id.setText("i d")
    assert not dlg.ok_button.isEnabled()

    # fioctl: the file must exist; its servers come from the file, so Advanced is off.
    dlg.tabs.setCurrentIndex(SignInDialog.FIOCTL)
    assert dlg.fioctl_path.text() == "~/.config/fioctl.yaml"
    assert not dlg.advanced_toggle.isEnabled()
    dlg.fioctl_path.setText("/nonexistent/fioctl.yaml")
    assert not dlg.ok_button.isEnabled()
    assert "no file" in dlg.message.text()


async def test_sign_in_with_api_token(qtbot, own_backend):
    backend = own_backend
    config_changed = []
    backend.configChanged.connect(lambda: config_changed.append(1))
    dlg = opened(qtbot, SignInDialog(backend))
    point_at_fake(dlg, backend)
    signed_in = []
    dlg.signedIn.connect(signed_in.append)
    dlg.token_factory.setText(DEMO_FACTORY)
    dlg.token.setText(demo_token(backend))
    QTest.keyClick(dlg.token, Qt.Key.Key_Return)  # Enter = the default button
    assert dlg.running
    assert not dlg.body.isEnabled() and not dlg.ok_button.isEnabled()
    assert dlg.busy_bar.isVisibleTo(dlg)
    assert DEMO_FACTORY in dlg.busy_label.text()
    await settle(dlg)
    assert dlg.result() == QDialog.DialogCode.Accepted
    assert not dlg.isVisible()
    assert dlg.factory is not None and dlg.factory.factory == DEMO_FACTORY
    assert signed_in == [dlg.factory]
    assert config_changed
    assert dlg.token.text() == ""  # the secret does not outlive the dialog
    assert not dlg.token.isUndoAvailable()


async def test_sign_in_failure_shown_inline_and_dialog_stays(qtbot, own_backend):
    backend = own_backend
    notices = []
    backend.notice.connect(lambda *a: notices.append(a))
    dlg = opened(qtbot, SignInDialog(backend))
    point_at_fake(dlg, backend)
    dlg.token_factory.setText("not-the-demo-factory")
    dlg.token.setText(demo_token(backend))
    dlg.ok_button.click()
    await settle(dlg)
    assert dlg.isVisible()
    assert dlg.message.property("kind") == "error"
    assert "404" in dlg.message.text() and "Factory not found" in dlg.message.text()
    assert not dlg.running and dlg.body.isEnabled() and dlg.ok_button.isEnabled()
    assert not dlg.busy_bar.isVisibleTo(dlg)
    assert dlg.token.text()  # kept for another try
    assert dlg.focusWidget() is dlg.token_factory  # back where the user was
    assert notices == []  # inline, not a tray notice
    assert [p.factory for p in backend.factories()] == [DEMO_FACTORY]
    # Editing the input takes the stale error away.
    dlg.token_factory.setText(DEMO_FACTORY)
    assert dlg.message.isHidden()
    dlg.reject()
    assert dlg.token.text() == ""


async def test_keyring_trouble_shown_in_the_cores_words(qtbot, own_backend, monkeypatch):
    backend = own_backend

    def locked() -> None:
        raise SecretsUnavailable(_LOCKED_MSG)

    monkeypatch.setattr(backend.services.secrets, "check", locked)
    dlg = opened(qtbot, SignInDialog(backend))
    point_at_fake(dlg, backend)
    dlg.token_factory.setText(DEMO_FACTORY)
    dlg.token.setText(demo_token(backend))
    dlg.ok_button.click()
    await settle(dlg)
    assert dlg.isVisible()
    assert dlg.message.text() == _LOCKED_MSG


async def test_sign_in_with_application_credentials(qtbot, own_backend):
    backend = own_backend
    backend.fake_api.factory.add_oauth_client(CLIENT_ID, CLIENT_SECRET)
    dlg = opened(qtbot, SignInDialog(backend))
    point_at_fake(dlg, backend)
    dlg.tabs.setCurrentIndex(SignInDialog.CLIENT)
    dlg.client_id.setText(CLIENT_ID)
    dlg.client_secret.setText(CLIENT_SECRET)
    assert dlg.oauth_url.text() == backend.fake_api.oauth_url
    dlg.ok_button.click()
    assert dlg.busy_label.text() == "Signing in…"
    await settle(dlg)
    assert dlg.result() == QDialog.DialogCode.Accepted, dlg.message.text()
    # The credentials have exactly one org: it became the factory.
    assert dlg.factory.factory == DEMO_FACTORY
    assert dlg.factory.auth == "oauth"
    assert dlg.client_secret.text() == ""


async def test_sign_in_with_wrong_client_secret(qtbot, own_backend):
    backend = own_backend
    backend.fake_api.factory.add_oauth_client(CLIENT_ID, CLIENT_SECRET)
    dlg = opened(qtbot, SignInDialog(backend))
    point_at_fake(dlg, backend)
    dlg.tabs.setCurrentIndex(SignInDialog.CLIENT)
    dlg.client_id.setText(CLIENT_ID)
    dlg.client_secret.setText("wrong-secret")
    dlg.ok_button.click()
    await settle(dlg)
    assert dlg.isVisible() and dlg.message.property("kind") == "error"
    assert "wrong-secret" not in dlg.message.text()


async def test_sign_in_from_fioctl(qtbot, own_backend, tmp_path):
    backend = own_backend
    server = backend.fake_api
    server.factory.add_oauth_client(CLIENT_ID, CLIENT_SECRET)
    fioctl_yaml = tmp_path / "fioctl.yaml"
    fioctl_yaml.write_text(
        "\n".join(
            [
                f"factory: {DEMO_FACTORY}",
                "server:",
                f"  url: {server.api_url}",
                "  insecure_skip_verify: false",
                "clientcredentials:",
                f"  client_id: {CLIENT_ID}",
                f"  client_secret: {CLIENT_SECRET}",
                "  access_token: stale",
                "  refresh_token: stale-r",
                "  token_type: bearer",
                "  expires_in: 3600",
                "  created: 2024-03-01T10:00:00.123456789Z",
                f"  url: {server.oauth_url}",
                "",
            ]
        )
    )
    before = fioctl_yaml.read_bytes()
    dlg = opened(qtbot, SignInDialog(backend))
    point_at_fake(dlg, backend)
    dlg.tabs.setCurrentIndex(SignInDialog.FIOCTL)
    dlg.fioctl_path.setText(str(fioctl_yaml))
    assert dlg.ok_button.isEnabled()
    dlg.ok_button.click()
    await settle(dlg)
    assert dlg.result() == QDialog.DialogCode.Accepted, dlg.message.text()
    assert dlg.factory.factory == DEMO_FACTORY and dlg.factory.client_id == CLIENT_ID
    assert fioctl_yaml.read_bytes() == before  # fioctl's file is left as it is


async def test_cancel_before_the_call_starts(qtbot, own_backend):
    backend = own_backend
    dlg = opened(qtbot, SignInDialog(backend))
    point_at_fake(dlg, backend)
    dlg.token_factory.setText("other-factory")
    dlg.token.setText(demo_token(backend))
    dlg.ok_button.click()
    task = dlg.work
    QTest.keyClick(dlg, Qt.Key.Key_Escape)  # Esc = Cancel, before the task had a turn
    assert not dlg.isVisible()
    assert dlg.result() == QDialog.DialogCode.Rejected
    assert dlg.token.text() == ""
    assert await asyncio.wait_for(task, timeout=10) is False
    assert [p.factory for p in backend.factories()] == [DEMO_FACTORY]


async def test_cancel_while_signing_in_abandons_the_call(qtbot, own_backend):
    backend = own_backend
    backend.fake_api.latency = 0.5
    dlg = opened(qtbot, SignInDialog(backend))
    point_at_fake(dlg, backend)
    dlg.token_factory.setText(DEMO_FACTORY)
    dlg.token.setText(demo_token(backend))
    dlg.ok_button.click()
    task = dlg.work
    await tick(0.1)
    assert dlg.running
    dlg.cancel_button.click()
    assert not dlg.isVisible() and not dlg.running
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=10)
    assert dlg.factory is None


# -- add a Foundries tunnel --------------------------------------------------------------


async def test_add_tunnel_validation(qtbot, backend):
    from fiotray.core.tunnels import Tunnel

    # The demo factory has its tunnel: a second one is refused, and the note says how on.
    # (It said "choose another name", but the interface comes from the factory.)
    dlg = opened(qtbot, AddFoundriesTunnelDialog(backend, factory=DEMO_FACTORY))
    await tick()
    dlg.address.setText("10.42.42.200")
    dlg.name.setText("laptop")
    assert not dlg.ok_button.isEnabled()
    assert dlg.factory_note.isVisibleTo(dlg)
    assert "One tunnel per factory" in dlg.factory_note.text()
    assert f"remove “{DEMO_FACTORY}” first" in dlg.factory_note.text()
    dlg.close()

    without_tunnel(backend)
    plain = Tunnel(
        name=DEMO_FACTORY, kind="plain", interface="wg-office", template="", public_key="k"
    )
    backend.services.tunnels.save(plain)
    dlg = opened(qtbot, AddFoundriesTunnelDialog(backend, factory=DEMO_FACTORY))
    await tick()
    assert dlg.factory.currentText() == DEMO_FACTORY
    assert not dlg.ok_button.isEnabled() and not dlg.factory_note.isVisibleTo(dlg)
    # The default name is the factory's, which the plain tunnel already has.
    dlg.address.setText("10.42.42.200")
    assert not dlg.ok_button.isEnabled()
    assert "exists already" in dlg.message.text()
    dlg.name.setText("laptop")
    assert dlg.ok_button.isEnabled()
    # Half-typed: no nagging, but no OK either.
    dlg.address.setText("10.42.4")
    assert not dlg.ok_button.isEnabled() and dlg.message.isHidden()
    dlg.address.setText("10.42.42.300")
    assert not dlg.ok_button.isEnabled()
    assert "not an IPv4 address" in dlg.message.text()
    dlg.address.setText("10.42.42.200")
    dlg.name.setText("bad name")
    assert not dlg.ok_button.isEnabled()


async def test_add_tunnel_fills_in_a_free_address_and_can_request_access(qtbot, backend):
    without_tunnel(backend)
    from tests.gui.waits import until

    server = "10.42.42.1"  # the demo factory's VPN server
    near, far = wgconf.engineer_addresses(server)[0], wgconf.engineer_addresses(server)[-1]
    dlg = opened(qtbot, AddFoundriesTunnelDialog(backend, factory=DEMO_FACTORY))
    await until(lambda: dlg.address.text() == near)
    # Asking for access takes the other end of the engineers' range (the admin's
    # `peers add` takes this one).
    dlg.request.setChecked(True)
    await until(lambda: dlg.address.text() == far)
    dlg.name.setText("asked")
    dlg.ok_button.click()
    await settle(dlg)
    assert dlg.result_page.isVisibleTo(dlg), dlg.message.text()
    tunnel = dlg.tunnel
    assert tunnel.address == far and tunnel.access == "request"
    assert "access is requested" in dlg.result_title.text()
    assert "--self-service admits this laptop" in dlg.result_note.text()
    # The request is in the factory's config, where a self-service server reads it.
    api = await backend.services.client(DEMO_FACTORY)
    files = {f.name: f.value for f in await api.factory_config_files()}
    assert files[f"fiotray-engineer-{tunnel.engineer}"] == (
        f"pubkey={tunnel.public_key}\naddress={far}"
    )


async def test_an_address_typed_by_the_user_is_never_replaced(qtbot, backend):
    from tests.gui.waits import until

    dlg = opened(qtbot, AddFoundriesTunnelDialog(backend, factory=DEMO_FACTORY))
    dlg.address.setText("10.42.42.200")
    dlg.request.setChecked(True)
    await until(lambda: not backend._tasks)  # both suggestions came back
    assert dlg.address.text() == "10.42.42.200"


async def test_a_new_tunnels_state_is_read_at_once(qtbot, backend):
    without_tunnel(backend)
    # It said "checking…" in the menu for minutes, until the next full check.
    dlg = opened(qtbot, AddFoundriesTunnelDialog(backend, factory=DEMO_FACTORY))
    dlg.address.setText("10.42.42.201")
    dlg.name.setText("fresh")
    dlg.ok_button.click()
    await settle(dlg)
    assert dlg.tunnel is not None, dlg.message.text()
    status = backend.tunnel_states.get("fresh")
    assert status is not None and status.state is State.DISCONNECTED


async def test_add_tunnel_shows_the_admin_line(qtbot, backend):
    without_tunnel(backend)
    dlg = opened(qtbot, AddFoundriesTunnelDialog(backend, factory=DEMO_FACTORY))
    added = []
    dlg.tunnelAdded.connect(added.append)
    dlg.address.setText("10.42.42.200")
    dlg.name.setText("laptop")
    dlg.ok_button.click()
    assert dlg.running
    await settle(dlg)
    assert dlg.isVisible(), dlg.message.text()
    assert dlg.result_page.isVisibleTo(dlg) and not dlg.form_page.isVisibleTo(dlg)
    tunnel = dlg.tunnel
    assert added == [tunnel]
    assert "laptop" in [t.name for t in backend.tunnels()]
    line = dlg.admin_line.toPlainText()
    assert line == backend.admin_line(tunnel)
    assert line == f"wg set fiodemo-factory peer {tunnel.public_key} allowed-ips 10.42.42.200/32"
    assert dlg.server_line.toPlainText() == (
        f"fiotray-server -f {DEMO_FACTORY} peers add {tunnel.engineer} {tunnel.public_key} "
        "--address 10.42.42.200"
    )
    assert "One step is left, on the server" in dlg.result_title.text()
    assert dlg.public_key.text() == tunnel.public_key
    dlg.copy_line.click()
    assert QGuiApplication.clipboard().text() == line
    dlg.copy_key.click()
    assert QGuiApplication.clipboard().text() == tunnel.public_key
    assert dlg.close_button.isVisible() and not dlg.ok_button.isVisible()
    QTest.keyClick(dlg, Qt.Key.Key_Escape)
    assert dlg.result() == QDialog.DialogCode.Accepted  # the tunnel exists: a success


async def test_add_tunnel_refused_by_the_core_inline(qtbot, backend):
    without_tunnel(backend)
    dlg = opened(qtbot, AddFoundriesTunnelDialog(backend))
    dlg.address.setText("192.168.1.20")
    dlg.name.setText("laptop")
    dlg.ok_button.click()
    await settle(dlg)
    assert dlg.isVisible() and dlg.form_page.isVisibleTo(dlg)
    assert dlg.message.property("kind") == "error"
    assert "outside the factory's VPN network" in dlg.message.text()
    assert "laptop" not in [t.name for t in backend.tunnels()]


async def test_add_tunnel_without_a_factory(qtbot, backend):
    await backend.sign_out(DEMO_FACTORY)
    dlg = opened(qtbot, AddFoundriesTunnelDialog(backend))
    assert not dlg.factory.isEnabled() and dlg.factory.count() == 0
    dlg.address.setText("10.42.42.200")
    assert not dlg.ok_button.isEnabled()


# -- import a plain tunnel -------------------------------------------------------------


async def test_import_refuses_hooks_inline(qtbot, own_backend, tmp_path):
    backend = own_backend  # from a demo, an import is the user's own and leaves it
    conf = tmp_path / "office.conf"
    conf.write_text(conf_text("PostUp = touch /tmp/pwned"))
    dlg = opened(qtbot, ImportTunnelDialog(backend))
    assert not dlg.ok_button.isEnabled()
    dlg.path.setText(str(conf))
    assert dlg.name.placeholderText() == "optional, default: office"
    assert dlg.ok_button.isEnabled()
    dlg.ok_button.click()
    await settle(dlg)
    assert dlg.isVisible()
    assert dlg.message.property("kind") == "error"
    assert "PostUp is not allowed" in dlg.message.text()
    assert "run shell commands as root" in dlg.message.text()
    assert "office" not in [t.name for t in backend.tunnels()]


async def test_import_moves_the_key_to_the_keyring(qtbot, own_backend, tmp_path):
    backend = own_backend  # from a demo, an import is the user's own and leaves it
    conf = tmp_path / "lab vpn.conf"
    conf.write_text(conf_text())
    dlg = opened(qtbot, ImportTunnelDialog(backend))
    dlg.path.setText(str(tmp_path / "missing.conf"))
    assert not dlg.ok_button.isEnabled() and "no file" in dlg.message.text()
    dlg.path.setText(str(conf))
    dlg.name.setText(DEMO_FACTORY)  # taken by the demo's tunnel
    assert not dlg.ok_button.isEnabled() and "exists already" in dlg.message.text()
    dlg.name.setText("")
    dlg.ok_button.click()
    await settle(dlg)
    assert dlg.result() == QDialog.DialogCode.Accepted, dlg.message.text()
    assert dlg.tunnel.name == "lab-vpn" and dlg.tunnel.kind == "plain"
    assert backend.services.secrets.get(tunnel_key("lab-vpn"))
    assert "PrivateKey" not in dlg.tunnel.template


async def test_import_browse_uses_a_file_dialog_without_exec(qtbot, backend, tmp_path):
    conf = tmp_path / "office.conf"
    conf.write_text(conf_text())
    dlg = opened(qtbot, ImportTunnelDialog(backend))
    dlg.browse.click()
    file_dialog = dlg.file_dialog
    assert file_dialog is not None and file_dialog.isVisible()
    file_dialog.fileSelected.emit(str(conf))
    file_dialog.reject()
    assert dlg.path.text() == str(conf)
    assert dlg.ok_button.isEnabled()


# -- settings -----------------------------------------------------------------------------


async def test_settings_round_trip(qtbot, backend):
    first = backend.tunnels()[0]
    tunnel = "second"  # not the default the first tunnel got when it was saved
    backend.services.tunnels.save(dataclasses.replace(first, name=tunnel, interface="fiodemo2"))
    dlg = opened(qtbot, SettingsDialog(backend))
    assert dlg.demo_note.isVisibleTo(dlg)
    assert dlg.terminal.placeholderText() == "detect automatically"
    assert dlg.route_buttons["jump"].isChecked()
    dlg.terminal.setText("sh")
    dlg.ssh_user.setText("root")
    dlg.route_buttons["direct"].setChecked(True)
    dlg.notifications.setChecked(False)
    dlg.autostart.setChecked(True)
    dlg.default_tunnel.setCurrentIndex(dlg.default_tunnel.findData(tunnel))
    assert dlg.left_click.currentData() == "menu"
    dlg.left_click.setCurrentIndex(dlg.left_click.findData("toggle"))
    assert set(dlg.autoconnect) == {first.name, tunnel}
    assert not any(box.isChecked() for box in dlg.autoconnect.values())
    dlg.autoconnect[tunnel].setChecked(True)
    await tick(0.4)  # the terminal line is looked up after typing pauses
    assert dlg.terminal_now.text().startswith("SSH opens in: sh")
    dlg.ok_button.click()
    assert dlg.result() == QDialog.DialogCode.Accepted
    saved = SettingsStore(backend.services.settings.path.parent).load()
    assert (saved.terminal, saved.ssh_user, saved.ssh_route) == ("sh", "root", "direct")
    assert (saved.notifications, saved.autostart) == (False, True)
    assert saved.left_click == "toggle"
    assert backend.settings == saved
    # The default tunnel and "connect when fiotray starts" live with the tunnels.
    store = TunnelStore(backend.services.tunnels.config_dir)
    assert store.get().name == tunnel
    assert {t.name: t.autoconnect for t in store.list()} == {first.name: False, tunnel: True}

    assert saved.reach_wait == 900.0, "the wait was not touched: it stays as it was"

    again = opened(qtbot, SettingsDialog(backend))
    assert again.terminal.text() == "sh" and again.route_buttons["direct"].isChecked()
    assert again.default_tunnel.currentData() == tunnel
    assert again.left_click.currentData() == "toggle" and again.autoconnect[tunnel].isChecked()
    assert again.reach_wait.value() == 15
    again.reach_wait.setValue(4)
    again.ok_button.click()
    assert backend.settings.reach_wait == 240.0


async def test_a_reach_wait_in_seconds_survives_the_settings_dialog(qtbot, backend):
    backend.save_settings(dataclasses.replace(backend.settings, reach_wait=5.0))
    dlg = opened(qtbot, SettingsDialog(backend))
    assert dlg.reach_wait.value() == 1  # shown as the least the box holds
    dlg.ok_button.click()
    assert backend.settings.reach_wait == 5.0


async def test_settings_cancel_and_validation(qtbot, backend):
    before = backend.settings
    dlg = opened(qtbot, SettingsDialog(backend))
    dlg.ssh_user.setText("Root User")
    assert not dlg.ok_button.isEnabled()
    assert "invalid" in dlg.message.text()
    dlg.ssh_user.setText("")  # empty means the default login
    assert dlg.ok_button.isEnabled()
    dlg.terminal.setText("no-such-terminal-xyz")
    await tick(0.4)
    assert "no-such-terminal-xyz" in dlg.terminal_now.text()
    assert "not found" in dlg.terminal_now.text()
    dlg.route_buttons["public"].setChecked(True)
    QTest.keyClick(dlg, Qt.Key.Key_Escape)
    assert dlg.result() == QDialog.DialogCode.Rejected
    assert backend.settings == before
    assert not backend.services.settings.path.exists()


async def test_settings_keep_a_default_tunnel_that_is_gone(qtbot, backend):
    path = backend.services.tunnels.path
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "default": "old-one"}))  # edited by hand
    dlg = opened(qtbot, SettingsDialog(backend))
    assert dlg.default_tunnel.currentData() == "old-one"
    dlg.ok_button.click()
    assert dlg.result() == QDialog.DialogCode.Accepted
    assert backend.default_tunnel_name() == "old-one"


# -- help ---------------------------------------------------------------------------------


async def test_help_page(qtbot):
    dlg = opened(qtbot, HelpDialog(None))
    text = dlg.browser.toPlainText()
    for needle in (
        "Foundries tunnel",
        "Plain WireGuard tunnel",
        "wg set fio<factory> peer <your public key> allowed-ips <your VPN address>/32",
        "fiotray-server -f <factory> peers add <you> <your public key>",
        "Ask the server to admit this laptop",
        "waiting for the server to admit this laptop",
        "jump",
        "direct",
        "public",
        "keyring",
        "AppIndicator",
    ):
        assert needle in text, needle
    QTest.keyClick(dlg, Qt.Key.Key_Escape)
    assert not dlg.isVisible()


def test_one_dialog_per_module_and_the_package_imports_none():
    modules = {
        SignInDialog: "sign_in",
        AddFoundriesTunnelDialog: "add_tunnel",
        ImportTunnelDialog: "import_tunnel",
        SettingsDialog: "settings",
        HelpDialog: "help",
        AboutDialog: "about",
    }
    for cls, name in modules.items():
        assert cls.__module__ == f"fiotray.gui.dialogs.{name}"
    # The tray imports a dialog's module when it first opens: the package alone loads none.
    probe = (
        "import sys, fiotray.gui.dialogs; "
        "print([m for m in sys.modules if m.startswith('fiotray.gui.dialogs.')])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "[]"


async def test_about_gives_diagnostics_without_a_secret(qtbot, backend):
    token = demo_token(backend)
    tunnel = backend.tunnels()[0]
    dlg = opened(qtbot, AboutDialog(backend))
    text = dlg.details.toPlainText()
    for key in ("fiotray: ", "python: ", "qt: ", "desktop: ", "tray: ", "keyring: ", "log: "):
        assert any(line.startswith(key) for line in text.splitlines()), key
    for secret in (token, tunnel.public_key, tunnel.address, DEMO_FACTORY):
        assert secret not in text
    dlg.copy.click()
    assert QGuiApplication.clipboard().text() == text
