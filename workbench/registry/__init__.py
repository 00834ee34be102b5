"""Model versions, aliases and deployments (a later issue)."""
