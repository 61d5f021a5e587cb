"""mlcycle: a Kubeflow-native machine-learning lifecycle for tabular models."""

__version__ = "0.1.0"
