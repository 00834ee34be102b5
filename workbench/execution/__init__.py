"""Executors (docker, process), image resolution, ingestion of logs and metrics, and the reconciler."""
