"""The one place that talks to MLflow: the client, artifact downloads, publishing results.

MLflow is imported inside these modules only when a registry case needs it.
"""
