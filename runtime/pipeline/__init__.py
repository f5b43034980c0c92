"""The pipeline language: models, loader, templates, conditions, executor and steps."""
