"""What serves a registered model: a deployment's containers on one engine (serving), the Caddy proxy in front
(proxy), HTTP asks to them (health), the endpoint's port and address (ports), the smoke request (smoke) and
the proxy's traffic figures (traffic). The model registry itself is workbench/registry."""
