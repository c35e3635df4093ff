"""A short help page, links opening in the browser."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QSizePolicy,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from fiotray.gui.screen import fit_to_screen

if TYPE_CHECKING:
    from fiotray.gui.backend import Backend

HELP_HTML = """
<h2>fiotray</h2>
<p>One-click access to your FoundriesFactory devices over the factory's WireGuard VPN.</p>

<h3>Signing in</h3>
<p>Use an API token (<a href="https://app.foundries.io/settings/tokens/">settings/tokens</a>),
the application credentials <code>fioctl login</code> uses
(<a href="https://app.foundries.io/settings/credentials/">settings/credentials</a>), or import
what fioctl already keeps in <code>~/.config/fioctl.yaml</code>. Self-hosted factories: set the
API or OAuth URL under <i>Advanced</i>.</p>

<h3>Which tunnel?</h3>
<ul>
<li><b>Foundries tunnel</b>: to your factory's VPN server (factory-wireguard-server or
fiotray-server), to reach the factory's devices. fiotray reads the server from the factory,
makes a key pair on this laptop and routes the whole VPN network into the tunnel.</li>
<li><b>Plain WireGuard tunnel</b>: any other WireGuard network (an office or lab VPN), imported
from a wg-quick <code>.conf</code> file. Configs with <code>PreUp</code>, <code>PostUp</code>,
<code>PreDown</code> or <code>PostDown</code> hooks are refused: they would run as root.</li>
</ul>

<h3>The server's step</h3>
<p>The factory's VPN server must admit this laptop once. Where it runs fiotray-server with
self-service, tick <i>Ask the server to admit this laptop</i> when you add the tunnel: it admits
the laptop at its next sync (every 5 minutes by default). Otherwise its admin runs, on the
server, with fiotray-server (the peer is kept for good):</p>
<pre>{server_line}</pre>
<p>or with factory-wireguard-server (which drops the peer at its next device change, so the admin
must also keep it in the server's own configuration):</p>
<pre>{admin_line}</pre>
<p>Until then the tunnel comes up and the tray says <i>waiting for the server to admit this
laptop</i>; once the server has answered, silence means <i>server unreachable</i>.</p>

<h3>SSH routes</h3>
<p>Devices accept tunnel traffic only from the VPN server's address, so:</p>
<ul>
<li><b>jump</b> (default): through the VPN server as an SSH jump host, over the tunnel. Works
with the server as it is; you need an account on the server.</li>
<li><b>direct</b>: straight to the device's VPN address. Works only where the server forwards
with NAT out of its WireGuard interface (fiotray-server --forward).</li>
<li><b>public</b>: through the server's public SSH host (set in the tunnel's SSH settings), without
the tunnel.</li>
</ul>
<p>The device login is <code>fio</code> unless you change it in Settings; SSH opens in your
own terminal.</p>

<h3>Where secrets are kept</h3>
<p>API tokens, client secrets, OAuth tokens and WireGuard private keys live only in the system
keyring (Secret Service: gnome-keyring, KeePassXC, KWallet). fiotray never writes a secret to a
file: without a keyring it says so and stores nothing. Tunnels go up and down through a small
helper started with pkexec; fiotray itself never runs as root.</p>

<h3>No tray icon on GNOME?</h3>
<p>GNOME shows tray icons only with the AppIndicator extension: install it (Debian and Ubuntu:
<code>gnome-shell-extension-appindicator</code>), enable it in <i>Extensions</i>, log out and in
again, then start fiotray again.</p>
""".replace(
    "{admin_line}",
    "wg set fio&lt;factory&gt; peer &lt;your public key&gt; "
    "allowed-ips &lt;your VPN address&gt;/32",
).replace(
    "{server_line}",
    "fiotray-server -f &lt;factory&gt; peers add &lt;you&gt; &lt;your public key&gt; \\\n"
    "    --address &lt;your VPN address&gt;",
)


class HelpDialog(QDialog):
    """A short help page; links open in the browser."""

    # The backend is unused: it is there so every dialog opens the same way.
    def __init__(self, backend: Backend | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.backend = backend
        self.setWindowTitle("Help — fiotray")
        self.setMinimumSize(480, 420)
        self.resize(620, 680)
        fit_to_screen(self)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        self.browser.document().setDefaultStyleSheet(
            "h2 { margin-bottom: 4px; } h3 { margin-top: 14px; margin-bottom: 4px; }"
            "pre { margin-left: 12px; }"
        )
        self.browser.setHtml(HELP_HTML)
        self.browser.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        close = buttons.button(QDialogButtonBox.StandardButton.Close)
        close.setDefault(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)
        close.setFocus()
