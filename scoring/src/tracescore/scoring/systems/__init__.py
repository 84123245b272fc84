"""System-under-test adapters: how the runner calls one case of one variant."""

from tracescore.scoring.systems.base import Invocation, SystemAdapter
from tracescore.scoring.systems.command import CommandAdapter

__all__ = ["CommandAdapter", "Invocation", "SystemAdapter"]
