"""Forward a port of one device: a preset or any port, local or remote, saved or not."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QSpinBox, QVBoxLayout, QWidget

from fiotray.core.forward import PRESETS
from fiotray.gui.dialogs.base import WorkDialog, form_layout, note_label

if TYPE_CHECKING:
    from fiotray.core.forward import Forward
    from fiotray.gui.backend import Backend

OTHER = "Other port"


class ForwardDialog(WorkDialog):
    """Start a forward to `device` over its SSH route; closes once the forward is up."""

    forwardStarted = Signal(object)  # Forward

    def __init__(
        self,
        backend: Backend,
        parent: QWidget | None = None,
        *,
        factory: str = "",
        device: str = "",
    ) -> None:
        super().__init__(backend, parent, "Forward")
        self.factory, self.device = factory, device
        self.setWindowTitle(f"Forward a port of {device}")
        self.setMinimumWidth(440)
        self.forward: Forward | None = None

        self.preset = QComboBox()
        for port, label in PRESETS:
            self.preset.addItem(f"{label} — port {port}", port)
        self.preset.addItem(OTHER, None)
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(PRESETS[0][0])
        self.port.setToolTip("The port on the device")
        self.local = QSpinBox()
        # 0 shows as "any free port": the forward then picks one.
        self.local.setRange(0, 65535)
        self.local.setSpecialValueText("any free port")
        self.local.setToolTip("The port on this computer (127.0.0.1 only)")
        self.remote = QCheckBox("&Reverse: the device reaches a port on this computer")
        self.remote.setToolTip(
            "A remote forward (ssh -R): the port on the device's loopback reaches the "
            "local port here"
        )
        self.save = QCheckBox("&Keep it: start again with fiotray")
        form = form_layout()
        form.addRow("&Service:", self.preset)
        form.addRow("Device &port:", self.port)
        form.addRow("&Local port:", self.local)
        layout = QVBoxLayout(self.body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(
            note_label(
                f"Makes a port of {device} reachable on this computer's 127.0.0.1 over the "
                "device's SSH route (the one Open SSH terminal takes). Stop it from the "
                "tray menu's Port forwards."
            )
        )
        layout.addLayout(form)
        layout.addWidget(self.remote)
        layout.addWidget(self.save)
        layout.addStretch(1)

        self.preset.currentIndexChanged.connect(self._preset_changed)
        self.port.valueChanged.connect(self._port_changed)
        self.local.valueChanged.connect(self._revalidate)
        self.remote.toggled.connect(self._revalidate)
        self._revalidate()
        self.preset.setFocus()

    def _preset_changed(self) -> None:
        port = self.preset.currentData()
        if port is not None and port != self.port.value():
            self.port.setValue(port)
        self._revalidate()

    def _port_changed(self, value: int) -> None:
        index = self.preset.findData(value)
        self.preset.blockSignals(True)
        self.preset.setCurrentIndex(index if index >= 0 else self.preset.count() - 1)
        self.preset.blockSignals(False)
        self._revalidate()

    def _check(self) -> tuple[bool, str]:
        from fiotray.core.errors import FiotrayError
        from fiotray.core.forward import validate_local_port

        local = self.local.value()
        if self.remote.isChecked():
            if local == 0:
                return False, "A reverse forward needs the local port it reaches."
            return True, ""
        if local:
            try:
                validate_local_port(local)
            except FiotrayError as exc:
                return False, str(exc)
        return True, ""

    def _submit(self) -> None:
        assert self.backend is not None
        backend = self.backend
        port, local = self.port.value(), self.local.value() or None
        kind = "remote" if self.remote.isChecked() else "local"
        save = self.save.isChecked()
        self._start(
            lambda: backend.start_forward(
                self.factory, self.device, port, kind=kind, local_port=local, save=save
            ),
            f"Starting the forward to {self.device}…",
            self._started_ok,
        )

    def _started_ok(self, forward: Forward) -> None:
        self.forward = forward
        self.forwardStarted.emit(forward)
        self.accept()
