"""The MLflow side: tracking evaluation and training runs, and the model registry with its accuracy gate."""
