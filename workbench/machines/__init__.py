"""Machines: the local workstation and SSH hosts, their connections and telemetry."""
