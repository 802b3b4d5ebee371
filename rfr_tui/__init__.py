"""rfr terminal user interface (Textual). Screens only; business rules live in engine/."""
