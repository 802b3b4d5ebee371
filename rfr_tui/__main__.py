"""``python -m rfr_tui``: the application on the configured terminal."""

from rfr_tui.launch import run_application

raise SystemExit(run_application())
