"""Metrics: the registry of named metrics, the evaluator, and the papers' metrics and their networks."""
