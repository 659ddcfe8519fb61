"""The docker's server section: start a local backend or connect to a URL, and show the state."""

from __future__ import annotations

from latentbrush.protocol.transport import DEFAULT_URL

from ...qt import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    Qt,
    QVBoxLayout,
    QWidget,
    pyqtSignal,
)
from .settings import LOCAL, REMOTE

STATE_COLORS = {
    "connected": "#3a3",
    "connecting": "#c90",
    "reconnecting": "#c90",
    "failed": "#c33",
    "closed": "#888",
}
STATE_TEXT = {
    "connected": "Connected",
    "connecting": "Connecting…",
    "reconnecting": "Reconnecting…",
    "failed": "Not connected",
    "closed": "Not connected",
}


class ConnectionPanel(QWidget):
    """Emits ``connect_requested(mode, command, url, token)`` and ``disconnect_requested()``."""

    connect_requested = pyqtSignal(str, str, str, str)
    disconnect_requested = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.status = QLabel()
        self.status.setObjectName("latentbrush_connection_status")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.RichText)
        self.server_label = QLabel()
        self.server_label.setWordWrap(True)
        self.mode = QComboBox()
        self.mode.addItem("Start local server", LOCAL)
        self.mode.addItem("Connect to URL", REMOTE)
        self.command = QLineEdit()
        self.command.setPlaceholderText("latentbrush-server (from PATH)")
        self.command.setToolTip("Command that starts the backend; --port 0 is added")
        self.url = QLineEdit()
        self.url.setPlaceholderText(DEFAULT_URL)
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("token (blank: this machine's token file)")
        self.button = QPushButton("Connect")
        self.button.setObjectName("latentbrush_connect")
        self.button.clicked.connect(self._clicked)

        local = QWidget()
        local_form = QFormLayout(local)
        local_form.setContentsMargins(0, 0, 0, 0)
        local_form.addRow("Command", self.command)
        remote = QWidget()
        remote_form = QFormLayout(remote)
        remote_form.setContentsMargins(0, 0, 0, 0)
        remote_form.addRow("URL", self.url)
        remote_form.addRow("Token", self.token)
        self.pages = QStackedWidget()
        self.pages.addWidget(local)
        self.pages.addWidget(remote)
        self.mode.currentIndexChanged.connect(self.pages.setCurrentIndex)
        self.mode.currentIndexChanged.connect(lambda _: self.button.setText(self._button_text()))

        row = QHBoxLayout()
        row.addWidget(self.mode, 1)
        row.addWidget(self.button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.status)
        layout.addLayout(row)
        layout.addWidget(self.pages)
        layout.addWidget(self.server_label)
        self._state = "closed"
        self.set_state("closed", "")

    @property
    def connected(self) -> bool:
        return self._state in ("connected", "connecting", "reconnecting")

    def current_mode(self) -> str:
        return str(self.mode.currentData())

    def set_mode(self, mode: str) -> None:
        self.mode.setCurrentIndex(max(0, self.mode.findData(mode)))

    def set_state(self, state: str, message: str) -> None:
        """Show ``state``; the first line of ``message`` goes on the panel, all of it in the tooltip
        (a dead server's last lines). After a failure the button offers Restart (local) or Reconnect."""
        self._state = state
        color = STATE_COLORS.get(state, "#888")
        text = STATE_TEXT.get(state, state)
        first = message.split("\n", 1)[0]
        detail = f" — {first}" if first and state != "connected" else ""
        self.status.setText(f'<span style="color:{color}">●</span> {text}{_escape(detail)}')
        self.status.setToolTip(message if "\n" in message else "")
        self.button.setText(self._button_text())
        for widget in (self.mode, self.command, self.url, self.token):
            widget.setEnabled(not self.connected)

    def _button_text(self) -> str:
        if self.connected:
            return "Disconnect"
        if self._state == "failed":
            return "Restart" if self.current_mode() == LOCAL else "Reconnect"
        return "Connect"

    def set_server_info(self, text: str) -> None:
        self.server_label.setText(text)

    def _clicked(self) -> None:
        if self.connected:
            self.disconnect_requested.emit()
        else:
            self.connect_requested.emit(
                self.current_mode(), self.command.text().strip(), self.url.text().strip(), self.token.text().strip()
            )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
