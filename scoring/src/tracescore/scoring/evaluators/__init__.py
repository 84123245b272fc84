"""Evaluators: built-ins register themselves on import."""

from tracescore.scoring.evaluators import budgets, external, structure, text, trajectory
from tracescore.scoring.evaluators import judge as judge
from tracescore.scoring.evaluators import semantic as semantic
from tracescore.scoring.evaluators import workspace as workspace
from tracescore.scoring.evaluators.base import (
    BUILT_IN,
    Evaluator,
    EvaluatorParams,
    build_evaluator,
    evaluator_source,
    register,
    registered,
    unregister,
)
from tracescore.scoring.evaluators.plugins import (
    ENTRY_POINT_GROUP,
    PluginFailure,
    ScorerParams,
    isolated_registry,
    load_plugins,
    plugin_failures,
    reset_plugins,
    scorer,
)

__all__ = [
    "BUILT_IN",
    "ENTRY_POINT_GROUP",
    "Evaluator",
    "EvaluatorParams",
    "PluginFailure",
    "ScorerParams",
    "budgets",
    "build_evaluator",
    "evaluator_source",
    "external",
    "isolated_registry",
    "load_plugins",
    "plugin_failures",
    "register",
    "registered",
    "reset_plugins",
    "scorer",
    "structure",
    "text",
    "trajectory",
    "unregister",
]
