"""The search inside other tools' loops: ``integrations.optuna`` (an Optuna sampler)."""
