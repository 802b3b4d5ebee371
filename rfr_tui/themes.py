"""The application's two themes: a calm default for long shifts and a high-contrast one.

Colour never carries a state alone (see ``rfr_tui.widgets.state_label``); the high-contrast
theme is pure black and white with saturated accents and dark text on every light surface.
"""

from __future__ import annotations

from textual.theme import Theme

DEFAULT = Theme(
    name="rfr",
    primary="#4A90D9",
    secondary="#2D5A8A",
    accent="#5CC8E0",
    warning="#E0A030",
    error="#E25563",
    success="#4CB870",
    foreground="#E6E6E6",
    background="#1C1F24",
    surface="#252A31",
    panel="#2F3640",
    dark=True,
)

HIGH_CONTRAST = Theme(
    name="rfr-high-contrast",
    primary="#FFD700",
    secondary="#FFFFFF",
    accent="#00E5FF",
    warning="#FFD700",
    error="#FF6B6B",
    success="#3DFF8C",
    foreground="#FFFFFF",
    background="#000000",
    surface="#000000",
    panel="#1A1A1A",
    boost="#FFFFFF",
    dark=True,
    luminosity_spread=0.0,
    text_alpha=1.0,
    variables={
        "text-muted": "#FFFFFF",
        "button-color-foreground": "#000000",
        "button-focus-text-style": "bold reverse",
        "footer-key-foreground": "#FFD700",
        "footer-description-foreground": "#FFFFFF",
        "footer-background": "#000000",
        "block-cursor-background": "#FFD700",
        "block-cursor-foreground": "#000000",
        "block-cursor-text-style": "bold",
        "input-cursor-background": "#FFFFFF",
        "input-cursor-foreground": "#000000",
        "input-selection-background": "#00E5FF 60%",
        "border": "#FFFFFF",
        "border-blurred": "#FFFFFF",
    },
)

THEMES = (DEFAULT, HIGH_CONTRAST)
