"""``python -m rfr_tui.oversight``: the oversight's application on the configured oversight workspace."""

from rfr_tui.oversight import main

raise SystemExit(main())
