"""The model registry (content-addressed model files, references like NAME:3 and NAME@production) and
deployments (a serving container per version behind a reverse proxy on the host, switched blue/green)."""
