"""Models registered from runs: not built yet, said plainly."""

from workbench.tui.screens.empty_state import EmptyStateScreen


class ModelsScreen(EmptyStateScreen):
    MODE = "models"
    MESSAGE = ("No models yet. Registering a run's model (with versions and aliases) is not built yet; "
               "runs already keep their artifacts with sha256 (Runs → enter → Overview).")
