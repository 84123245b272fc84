"""The README's evaluator examples are valid configuration (and cover every built-in)."""

import re
import sys
from pathlib import Path

import pytest
import yaml

from tracescore.schemas.suite import EvaluatorSpec
from tracescore.scoring.evaluators import BUILT_IN, build_evaluator, evaluator_source, registered

README = Path(__file__).parents[2] / "README.md"


def readme_examples() -> list[dict[str, object]]:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"An example of each.*?```yaml\n(.*?)```", text, re.S)
    assert block is not None
    entries: list[dict[str, object]] = yaml.safe_load(block.group(1))["evaluators"]
    return entries


def test_every_example_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The python example's function, as a user's module would provide it.
    package = tmp_path / "my_evals"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "checks.py").write_text("def polite(trace, case, strict=False):\n    return True\n")
    monkeypatch.syspath_prepend(tmp_path)
    try:
        built = [build_evaluator(EvaluatorSpec.model_validate(e)) for e in readme_examples()]
    finally:
        sys.modules.pop("my_evals.checks", None)
        sys.modules.pop("my_evals", None)
    built_ins = {name for name in registered() if evaluator_source(name) == BUILT_IN}
    assert {e.type_name for e in built} == built_ins
