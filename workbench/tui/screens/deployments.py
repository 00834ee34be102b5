"""Deployments of registered models: not built yet, said plainly."""

from workbench.tui.screens.empty_state import EmptyStateScreen


class DeploymentsScreen(EmptyStateScreen):
    MODE = "deployments"
    MESSAGE = ("No deployments yet. Serving a model on a remote machine with health checks and rollback "
               "is not built yet; a project's [deploy] table is already validated.")
