"""Evaluation of the assistant: tools run from the repository root as ``python -m eval.NAME``."""
