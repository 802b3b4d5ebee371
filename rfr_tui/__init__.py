"""rfr terminal user interface (Textual). Screens only; business rules live in engine/.

This package's ``__init__`` never imports Textual. Every entry point starts with::

    import rfr_tui
    rfr_tui.scrub_textual_environment()   # before anything imports textual
    from rfr_tui.app import ...           # Textual (and textual-image's terminal queries) from here

``rfr_tui.lockdown.LockedDownApp`` refuses to run if Textual read its switches all the same.
"""

from rfr_tui.environment import scrub_textual_environment

__all__ = ["scrub_textual_environment"]
