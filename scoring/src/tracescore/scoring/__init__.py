"""Trace reconstruction, evaluators, the suite runner and the tracescore CLI."""
