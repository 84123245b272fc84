"""Evaluators: built-ins register themselves on import."""

from tracescore.scoring.evaluators import budgets, structure, text, trajectory
from tracescore.scoring.evaluators.base import (
    Evaluator,
    EvaluatorParams,
    build_evaluator,
    register,
    registered,
)

__all__ = [
    "Evaluator",
    "EvaluatorParams",
    "budgets",
    "build_evaluator",
    "register",
    "registered",
    "structure",
    "text",
    "trajectory",
]
