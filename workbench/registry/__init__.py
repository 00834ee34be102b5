"""The model registry: content-addressed model files and references like NAME:3 and NAME@production
(models.py). What serves a version is workbench/serving."""
