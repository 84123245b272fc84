"""Loading eval.yaml and its cases: the demo suite, and one-line errors naming file:line: field."""

import re
from pathlib import Path

import pytest

from tracescore.schemas.errors import ConfigError
from tracescore.scoring.config import Suite, load_suite

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "configs" / "demo" / "eval.yaml"

HEX16 = re.compile(r"^[0-9a-f]{16}$")

# Line numbers below refer to this text (line 1 is `suite: mini`).
EVAL_YAML = """\
suite: mini
cases: cases.yaml
system:
  type: command
  command: ["{python}", "agent.py", "{input}"]
variants:
  - name: a
  - name: b
evaluators:
  - type: contains_text
  - type: tool_called
"""

CASES_YAML = """\
- id: one
  input: first question
  expected:
    contains: x
- id: two
  input: second question
"""


def write_suite(
    tmp_path: Path, eval_yaml: str = EVAL_YAML, cases_yaml: str | None = CASES_YAML
) -> Path:
    path = tmp_path / "eval.yaml"
    path.write_text(eval_yaml, encoding="utf-8")
    if cases_yaml is not None:
        (tmp_path / "cases.yaml").write_text(cases_yaml, encoding="utf-8")
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    message = str(info.value)
    assert "\n" not in message, message
    return message


# --- loading ----------------------------------------------------------------------------------


def test_the_demo_suite_loads() -> None:
    suite = load_suite(DEMO)
    assert suite.config.suite == "demo"
    assert len(suite.cases) == 7
    assert [v.name for v in suite.config.variants] == ["strong", "weak"]
    assert [e.name for e in suite.evaluators] == ["answer", "exact", "used_tools"]
    assert [e.type_name for e in suite.evaluators] == [
        "contains_text",
        "exact_match",
        "tool_called",
    ]
    assert suite.cases[0].id == "greet"
    assert suite.folder == DEMO.parent
    assert HEX16.match(suite.config_hash)
    assert HEX16.match(suite.dataset_hash)


def test_the_demo_suite_hashes_are_stable() -> None:
    first, second = load_suite(DEMO), load_suite(str(DEMO))
    assert first.config_hash == second.config_hash
    assert first.dataset_hash == second.dataset_hash
    assert first.config_hash != first.dataset_hash


def test_a_minimal_suite_loads_with_defaults(tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path))
    assert isinstance(suite, Suite)
    assert [c.id for c in suite.cases] == ["one", "two"]
    assert suite.cases[0].expected == {"contains": "x"}
    assert suite.config.concurrency == 4
    assert suite.config.variant_key == "tracescore.variant"
    assert [e.name for e in suite.evaluators] == ["contains_text", "tool_called"]


def test_hashes_follow_content_not_location(tmp_path: Path) -> None:
    one = load_suite(write_suite(subdir(tmp_path, "one")))
    two = load_suite(write_suite(subdir(tmp_path, "two")))
    assert one.config_hash == two.config_hash
    assert one.dataset_hash == two.dataset_hash


def subdir(parent: Path, name: str) -> Path:
    path = parent / name
    path.mkdir()
    return path


def test_dataset_hash_changes_with_the_cases_only(tmp_path: Path) -> None:
    base = load_suite(write_suite(tmp_path))
    changed = load_suite(write_suite(tmp_path, cases_yaml=CASES_YAML.replace("first", "1st")))
    assert changed.dataset_hash != base.dataset_hash
    assert changed.config_hash == base.config_hash


def test_config_hash_changes_with_the_config(tmp_path: Path) -> None:
    base = load_suite(write_suite(tmp_path))
    changed = load_suite(write_suite(tmp_path, EVAL_YAML + "concurrency: 8\n"))
    assert changed.config_hash != base.config_hash
    assert changed.dataset_hash == base.dataset_hash


def test_cases_may_be_a_mapping_with_a_cases_key(tmp_path: Path) -> None:
    nested = "cases:\n" + "".join(f"  {line}\n" for line in CASES_YAML.splitlines())
    suite = load_suite(write_suite(tmp_path, cases_yaml=nested))
    assert [c.id for c in suite.cases] == ["one", "two"]
    flat = load_suite(write_suite(subdir(tmp_path, "flat")))
    assert suite.dataset_hash == flat.dataset_hash


def test_cases_path_is_relative_to_the_eval_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.yaml").write_text("- id: only\n  input: hi\n", encoding="utf-8")
    path = write_suite(
        tmp_path, EVAL_YAML.replace("cases: cases.yaml", "cases: data/mine.yaml"), None
    )
    assert [c.id for c in load_suite(path).cases] == ["only"]


# --- errors -----------------------------------------------------------------------------------


def test_unknown_top_level_key(tmp_path: Path) -> None:
    text = EVAL_YAML.replace("cases: cases.yaml\n", "cases: cases.yaml\nconcurrenc: 3\n")
    path = write_suite(tmp_path, text)
    assert config_error(path) == f"{path}:3: concurrenc: unknown field"


def test_unknown_key_in_a_variant(tmp_path: Path) -> None:
    path = write_suite(tmp_path, EVAL_YAML.replace("  - name: b\n", "  - name: b\n    envv: {}\n"))
    assert config_error(path) == f"{path}:9: variants[1].envv: unknown field"


def test_missing_required_field(tmp_path: Path) -> None:
    path = write_suite(tmp_path, EVAL_YAML.replace("suite: mini\n", ""))
    message = config_error(path)
    assert re.fullmatch(rf"{re.escape(str(path))}:\d+: suite: required field is missing", message)


def test_missing_required_nested_field(tmp_path: Path) -> None:
    text = EVAL_YAML.replace('  command: ["{python}", "agent.py", "{input}"]\n', "  timeout_s: 5\n")
    path = write_suite(tmp_path, text)
    assert config_error(path) == f"{path}:3: system.command: required field is missing"


def test_unknown_evaluator_type(tmp_path: Path) -> None:
    path = write_suite(tmp_path, EVAL_YAML.replace("type: tool_called", "type: tool_caled"))
    message = config_error(path)
    prefix = f"{path}:11: evaluators[1].type: "
    assert message.startswith(prefix), message
    assert "tool_caled" in message
    for known in ("contains_text", "exact_match", "tool_called"):
        assert known in message[len(prefix) :]


def test_bad_evaluator_param_unknown_key(tmp_path: Path) -> None:
    text = EVAL_YAML.replace(
        "  - type: contains_text\n",
        "  - type: contains_text\n    params:\n      mode: any\n      txet: Paris\n",
    )
    path = write_suite(tmp_path, text)
    message = config_error(path)
    assert message.startswith(f"{path}:13: evaluators[0].params.txet: "), message


def test_bad_evaluator_param_wrong_type(tmp_path: Path) -> None:
    text = EVAL_YAML.replace(
        "  - type: contains_text\n",
        "  - type: contains_text\n    params:\n      case_sensitive: maybe\n",
    )
    path = write_suite(tmp_path, text)
    message = config_error(path)
    assert message.startswith(f"{path}:12: evaluators[0].params.case_sensitive: "), message
    assert "bool" in message


def test_invalid_yaml(tmp_path: Path) -> None:
    path = write_suite(tmp_path, EVAL_YAML.replace("  - name: b\n", "  - name: [b\n"))
    message = config_error(path)
    assert re.match(rf"{re.escape(str(path))}:\d+: invalid YAML: ", message), message
    line = int(message[len(str(path)) + 1 :].split(":", 1)[0])
    assert 8 <= line <= 9


def test_invalid_yaml_in_the_cases_file(tmp_path: Path) -> None:
    path = write_suite(tmp_path, cases_yaml="- id: one\n  input: {unclosed\n")
    message = config_error(path)
    cases = tmp_path / "cases.yaml"
    assert re.match(rf"{re.escape(str(cases))}:\d+: invalid YAML: ", message), message


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = write_suite(tmp_path, "- just\n- a list\n")
    message = config_error(path)
    assert message.startswith(f"{path}:1: "), message
    assert "mapping" in message


def test_missing_eval_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    message = config_error(path)
    assert str(path) in message
    assert "not found" in message


def test_missing_cases_file(tmp_path: Path) -> None:
    path = write_suite(tmp_path, EVAL_YAML.replace("cases.yaml", "missing.yaml"), None)
    message = config_error(path)
    assert message == (
        f"{tmp_path / 'eval.yaml'}:2: cases: cases file not found: {tmp_path / 'missing.yaml'}"
    )


def test_duplicate_case_ids(tmp_path: Path) -> None:
    cases = CASES_YAML + "- id: one\n  input: again\n"
    path = write_suite(tmp_path, cases_yaml=cases)
    message = config_error(path)
    assert message == f"{tmp_path / 'cases.yaml'}:7: [2].id: case id 'one' is used twice"


def test_duplicate_case_ids_in_a_mapping(tmp_path: Path) -> None:
    cases = "cases:\n  - id: x\n    input: a\n  - id: x\n    input: b\n"
    message = config_error(write_suite(tmp_path, cases_yaml=cases))
    assert message == f"{tmp_path / 'cases.yaml'}:4: cases[1].id: case id 'x' is used twice"


def test_invalid_case(tmp_path: Path) -> None:
    cases = CASES_YAML + "- id: three\n"
    message = config_error(write_suite(tmp_path, cases_yaml=cases))
    assert message == f"{tmp_path / 'cases.yaml'}:7: [2].input: required field is missing"


def test_duplicate_variant_names(tmp_path: Path) -> None:
    path = write_suite(tmp_path, EVAL_YAML.replace("  - name: b\n", "  - name: a\n"))
    message = config_error(path)
    assert message.startswith(f"{path}:6: variants: "), message
    assert "unique" in message
    assert "a" in message.rsplit(":", 1)[1]


def test_duplicate_evaluator_names(tmp_path: Path) -> None:
    text = EVAL_YAML.replace("  - type: tool_called\n", "  - type: contains_text\n")
    message = config_error(write_suite(tmp_path, text))
    assert message.startswith(f"{tmp_path / 'eval.yaml'}:9: evaluators: "), message
    assert "contains_text" in message


@pytest.mark.parametrize(
    ("cases_yaml", "field"),
    [
        ("[]\n", ""),
        ("cases: []\n", "cases: "),
        ("cases:\n", "cases: "),
    ],
)
def test_empty_cases_list(tmp_path: Path, cases_yaml: str, field: str) -> None:
    message = config_error(write_suite(tmp_path, cases_yaml=cases_yaml))
    assert message == f"{tmp_path / 'cases.yaml'}:1: {field}expected a non-empty list of cases"


def test_empty_cases_file(tmp_path: Path) -> None:
    message = config_error(write_suite(tmp_path, cases_yaml=""))
    assert message.startswith(str(tmp_path / "cases.yaml")), message
    assert "non-empty list of cases" in message
