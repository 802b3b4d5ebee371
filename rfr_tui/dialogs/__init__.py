"""Modal dialogs (``ModalScreen[T]`` returning with ``dismiss``): error, confirm, password again, help."""
