"""The full-screen Textual app: a thin view over workbench.services."""
