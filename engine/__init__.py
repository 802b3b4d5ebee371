"""The rfr engine: everything but the screens. Never imports Textual or Rich."""
