"""Light and dark palettes that follow the OS unless the user picked one."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

ACCENT = "#3b82f6"

_STYLE = """
#sidebar { border: none; padding-top: 8px; font-size: 14px; }
#sidebar::item { padding: 10px 14px; border-radius: 6px; margin: 2px 8px; }
#sidebar::item:selected { background: palette(highlight); color: palette(highlighted-text); }
#pageTitle { font-size: 22px; font-weight: 600; }
#pageSubtitle, #muted { color: palette(placeholder-text); }
#cardTitle { font-size: 15px; font-weight: 600; }
#card { border: 1px solid palette(mid); border-radius: 8px; background: palette(base); }
#fieldLabel { color: palette(placeholder-text); }
#command { font-family: monospace; }
#bigNumber { font-size: 20px; font-weight: 600; }
#messageBar { border-radius: 6px; }
#messageBar[level="info"] { background: #dbeafe; color: #1e3a8a; }
#messageBar[level="warning"] { background: #fef3c7; color: #78350f; }
#messageBar[level="error"] { background: #fee2e2; color: #7f1d1d; }
#messageBar QLabel { color: inherit; }
#badgeOk { color: #15803d; font-weight: 600; }
#badgeWarn { color: #b45309; font-weight: 600; }
#emptyState { font-size: 15px; color: palette(placeholder-text); }
"""


def os_prefers_dark() -> bool:
    hints = QGuiApplication.styleHints()
    scheme = getattr(hints, "colorScheme", None)
    return bool(scheme and scheme() == Qt.ColorScheme.Dark)


def dark_palette() -> QPalette:
    p = QPalette()
    window, base, text = QColor("#1f2125"), QColor("#16181c"), QColor("#e6e6e6")
    roles = {
        QPalette.ColorRole.Window: window,
        QPalette.ColorRole.WindowText: text,
        QPalette.ColorRole.Base: base,
        QPalette.ColorRole.AlternateBase: QColor("#23262b"),
        QPalette.ColorRole.ToolTipBase: QColor("#2b2e33"),
        QPalette.ColorRole.ToolTipText: text,
        QPalette.ColorRole.Text: text,
        QPalette.ColorRole.Button: QColor("#2b2e33"),
        QPalette.ColorRole.ButtonText: text,
        QPalette.ColorRole.BrightText: QColor("#ff6b6b"),
        QPalette.ColorRole.Highlight: QColor(ACCENT),
        QPalette.ColorRole.HighlightedText: QColor("#ffffff"),
        QPalette.ColorRole.Link: QColor("#7ab4ff"),
        QPalette.ColorRole.PlaceholderText: QColor("#9aa0a6"),
        QPalette.ColorRole.Mid: QColor("#3a3d42"),
        QPalette.ColorRole.Dark: QColor("#111214"),
        QPalette.ColorRole.Light: QColor("#3a3d42"),
    }
    for role, color in roles.items():
        p.setColor(role, color)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6b6f75"))
    return p


def light_palette(app: QApplication) -> QPalette:
    p = app.style().standardPalette()
    p.setColor(QPalette.ColorRole.Highlight, QColor(ACCENT))
    p.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    p.setColor(QPalette.ColorRole.PlaceholderText, QColor("#6b7280"))
    return p


def apply_theme(app: QApplication, theme: str) -> bool:
    """Apply 'system', 'light' or 'dark'. Returns True when the result is dark."""
    if app.style().name().lower() != "fusion":
        app.setStyle("Fusion")
    dark = theme == "dark" or (theme == "system" and os_prefers_dark())
    app.setPalette(dark_palette() if dark else light_palette(app))
    app.setStyleSheet(_STYLE)
    return dark
