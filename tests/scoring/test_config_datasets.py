"""JSON Lines cases, ${ENV} expansion, the published eval.yaml schema and suites built in code."""

import json
from pathlib import Path
from typing import Any

import pytest

from tests.scoring.test_config import CASES_YAML, EVAL_YAML
from tracescore.schemas.errors import ConfigError
from tracescore.schemas.suite import Case, SuiteConfig, eval_json_schema, eval_json_schema_text
from tracescore.scoring.cli import main
from tracescore.scoring.config import CODE_SUITE_NAME, load_suite, suite_from

REPO = Path(__file__).resolve().parents[2]

COMMITTED_SCHEMA = REPO / "schemas" / "src" / "tracescore" / "schemas" / "eval.schema.json"


CASES_JSONL = """\
{"id": "one", "input": "first question", "expected": {"contains": "x"}}

{"id": "two", "input": "second question"}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def jsonl_suite(tmp_path: Path, cases_jsonl: str) -> Path:
    write(tmp_path, "data.jsonl", cases_jsonl)
    return write(tmp_path, "eval.yaml", EVAL_YAML.replace("cases.yaml", "data.jsonl"))


def config_error(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_suite(path, environ=environ if environ is not None else {})
    message = str(info.value)
    assert "\n" not in message, message
    return message


# --- JSON Lines cases -------------------------------------------------------------------------


def test_jsonl_cases_load_and_skip_blank_lines(tmp_path: Path) -> None:
    suite = load_suite(jsonl_suite(tmp_path, CASES_JSONL))
    assert [c.id for c in suite.cases] == ["one", "two"]
    assert suite.cases[0].expected == {"contains": "x"}


def test_jsonl_and_yaml_cases_hash_the_same(tmp_path: Path) -> None:
    from_jsonl = load_suite(jsonl_suite(tmp_path, CASES_JSONL))
    write(tmp_path, "cases.yaml", CASES_YAML)
    from_yaml = load_suite(write(tmp_path, "eval.yaml", EVAL_YAML))
    assert from_jsonl.dataset_hash == from_yaml.dataset_hash
    assert from_jsonl.config_hash != from_yaml.config_hash  # `cases:` names another file


def test_jsonl_suffix_is_case_insensitive(tmp_path: Path) -> None:
    write(tmp_path, "DATA.JSONL", CASES_JSONL)
    path = write(tmp_path, "eval.yaml", EVAL_YAML.replace("cases.yaml", "DATA.JSONL"))
    assert [c.id for c in load_suite(path).cases] == ["one", "two"]


def test_jsonl_invalid_json_names_the_line(tmp_path: Path) -> None:
    message = config_error(jsonl_suite(tmp_path, CASES_JSONL + '{"id": "three", "input": }\n'))
    assert message == (f"{tmp_path / 'data.jsonl'}:4: invalid JSON: Expecting value (column 26)")


def test_jsonl_line_must_be_an_object(tmp_path: Path) -> None:
    message = config_error(jsonl_suite(tmp_path, '["one", "hi"]\n'))
    assert message == f"{tmp_path / 'data.jsonl'}:1: expected a JSON object (one case per line)"


def test_jsonl_field_error_names_line_and_field(tmp_path: Path) -> None:
    lines = CASES_JSONL + '{"id": "three", "input": "q", "expected": "391"}\n'
    message = config_error(jsonl_suite(tmp_path, lines))
    assert message == (f"{tmp_path / 'data.jsonl'}:4: expected: Input should be a valid dictionary")


def test_jsonl_missing_and_unknown_fields(tmp_path: Path) -> None:
    message = config_error(jsonl_suite(tmp_path, '{"id": "one"}\n'))
    assert message == f"{tmp_path / 'data.jsonl'}:1: input: required field is missing"
    message = config_error(jsonl_suite(tmp_path, '{"id": "one", "inptu": "x"}\n'))
    assert message == f"{tmp_path / 'data.jsonl'}:1: inptu: unknown field (and 1 more)"


def test_jsonl_duplicate_ids_name_both_lines(tmp_path: Path) -> None:
    lines = CASES_JSONL + '{"id": "one", "input": "again"}\n'
    message = config_error(jsonl_suite(tmp_path, lines))
    assert message == (
        f"{tmp_path / 'data.jsonl'}:4: id: case id 'one' is used twice (first on line 1)"
    )


@pytest.mark.parametrize("text", ["", "\n  \n"])
def test_jsonl_without_cases(tmp_path: Path, text: str) -> None:
    message = config_error(jsonl_suite(tmp_path, text))
    assert message == (
        f"{tmp_path / 'data.jsonl'}: expected a non-empty list of cases (one JSON object per line)"
    )


def test_jsonl_missing_file(tmp_path: Path) -> None:
    path = write(tmp_path, "eval.yaml", EVAL_YAML.replace("cases.yaml", "data.jsonl"))
    assert config_error(path) == (
        f"{path}:2: cases: cases file not found: {tmp_path / 'data.jsonl'}"
    )


# --- ${ENV} expansion -------------------------------------------------------------------------

ENV_YAML = EVAL_YAML.replace(
    "  - name: b\n",
    "  - name: b\n    env:\n      MODEL: ${MODEL}\n      KEY: key-${KEY:-none}\n",
)  # MODEL is on line 10, KEY on line 11


def env_suite(tmp_path: Path, eval_yaml: str = ENV_YAML, cases_yaml: str = CASES_YAML) -> Path:
    write(tmp_path, "cases.yaml", cases_yaml)
    return write(tmp_path, "eval.yaml", eval_yaml)


def test_env_variables_and_defaults_expand(tmp_path: Path) -> None:
    suite = load_suite(env_suite(tmp_path), environ={"MODEL": "m-1"})
    assert suite.config.variants[1].env == {"MODEL": "m-1", "KEY": "key-none"}
    suite = load_suite(env_suite(tmp_path), environ={"MODEL": "m-1", "KEY": "k"})
    assert suite.config.variants[1].env == {"MODEL": "m-1", "KEY": "key-k"}


def test_env_default_replaces_an_empty_variable_like_the_shell(tmp_path: Path) -> None:
    suite = load_suite(env_suite(tmp_path), environ={"MODEL": "", "KEY": ""})
    assert suite.config.variants[1].env == {"MODEL": "", "KEY": "key-none"}


def test_env_reads_os_environ_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL", "from-os")
    monkeypatch.delenv("KEY", raising=False)
    assert load_suite(env_suite(tmp_path)).config.variants[1].env["MODEL"] == "from-os"


def test_env_missing_variable_names_file_line_and_variable(tmp_path: Path) -> None:
    path = env_suite(tmp_path)
    assert config_error(path) == (
        f"{path}:10: variants[1].env.MODEL: environment variable MODEL is not set "
        "(give a default with ${MODEL:-default})"
    )


def test_env_escape_gives_a_literal(tmp_path: Path) -> None:
    text = ENV_YAML.replace("${MODEL}", "$${MODEL} costs $$5")
    suite = load_suite(env_suite(tmp_path, text), environ={})
    assert suite.config.variants[1].env["MODEL"] == "${MODEL} costs $$5"


def test_env_invalid_reference(tmp_path: Path) -> None:
    path = env_suite(tmp_path, ENV_YAML.replace("${MODEL}", "${1X}"))
    assert config_error(path) == (
        f"{path}:10: variants[1].env.MODEL: invalid reference ${{1X}}: write ${{NAME}} or "
        "${NAME:-default}, or $${...} for a literal"
    )


def test_env_values_cannot_change_the_yaml_structure(tmp_path: Path) -> None:
    path = env_suite(tmp_path)
    suite = load_suite(path, environ={"MODEL": "x\nconcurrency: 99", "KEY": "[1, 2]"})
    assert suite.config.variants[1].env == {"MODEL": "x\nconcurrency: 99", "KEY": "key-[1, 2]"}
    assert suite.config.concurrency == 4


def test_env_expanded_strings_convert_to_typed_fields(tmp_path: Path) -> None:
    path = env_suite(tmp_path, EVAL_YAML + "concurrency: ${N:-2}\n")
    assert load_suite(path, environ={}).config.concurrency == 2
    assert load_suite(path, environ={"N": "8"}).config.concurrency == 8
    assert config_error(path, {"N": "many"}) == (
        f"{path}:12: concurrency: Input should be a valid integer, "
        "unable to parse string as an integer"
    )


def test_env_keys_are_not_expanded(tmp_path: Path) -> None:
    text = EVAL_YAML.replace("  - name: b\n", "  - name: b\n    env: {'${K}': v}\n")
    suite = load_suite(env_suite(tmp_path, text), environ={})
    assert suite.config.variants[1].env == {"${K}": "v"}


def test_config_hash_is_of_the_expanded_config(tmp_path: Path) -> None:
    path = env_suite(tmp_path)
    one = load_suite(path, environ={"MODEL": "m-1"})
    same = load_suite(path, environ={"MODEL": "m-1", "UNUSED": "x"})
    two = load_suite(path, environ={"MODEL": "m-2"})
    assert one.config_hash == same.config_hash
    assert one.config_hash != two.config_hash
    literal = write(tmp_path, "literal.yaml", ENV_YAML.replace("${MODEL}", "m-1"))
    assert load_suite(literal, environ={}).config_hash == one.config_hash


def test_env_in_yaml_cases(tmp_path: Path) -> None:
    cases = CASES_YAML.replace("second question", "ask ${WHO:-nobody} about $${HOME}")
    suite = load_suite(env_suite(tmp_path, EVAL_YAML, cases), environ={"WHO": "Ada"})
    assert suite.cases[1].input == "ask Ada about ${HOME}"
    cases = CASES_YAML.replace("contains: x", "contains: ${ANSWER}")
    message = config_error(env_suite(tmp_path, EVAL_YAML, cases))
    assert message == (
        f"{tmp_path / 'cases.yaml'}:4: [0].expected.contains: environment variable ANSWER "
        "is not set (give a default with ${ANSWER:-default})"
    )


def test_env_in_jsonl_cases(tmp_path: Path) -> None:
    lines = CASES_JSONL + '{"id": "three", "input": "hi ${WHO}", "metadata": {"k": ["${X}"]}}\n'
    suite = load_suite(jsonl_suite(tmp_path, lines), environ={"WHO": "Ada", "X": "y"})
    assert suite.cases[2].input == "hi Ada"
    assert suite.cases[2].metadata == {"k": ["y"]}
    message = config_error(jsonl_suite(tmp_path, lines), {"WHO": "Ada"})
    assert message == (
        f"{tmp_path / 'data.jsonl'}:4: metadata.k[0]: environment variable X is not set "
        "(give a default with ${X:-default})"
    )


# --- the published schema ---------------------------------------------------------------------


def test_committed_schema_is_up_to_date() -> None:
    # Regenerate with: tracescore schema > schemas/src/tracescore/schemas/eval.schema.json
    assert COMMITTED_SCHEMA.read_text(encoding="utf-8") == eval_json_schema_text()


def test_schema_command_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    out = capsys.readouterr().out
    assert out == eval_json_schema_text()
    schema = json.loads(out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "tracescore eval.yaml"
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"suite", "system", "variants", "evaluators"}


def test_the_demo_suite_validates_against_the_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    yaml = pytest.importorskip("yaml")
    schema = eval_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    demo = yaml.safe_load((REPO / "configs" / "demo" / "eval.yaml").read_text(encoding="utf-8"))
    jsonschema.validate(demo, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**demo, "concurrenc": 3}, schema)


# --- suites built in code ---------------------------------------------------------------------

CONFIG: dict[str, Any] = {
    "suite": "mini",
    "system": {"type": "command", "command": ["{python}", "agent.py", "{input}"]},
    "variants": [{"name": "a"}, {"name": "b"}],
    "evaluators": [{"type": "contains_text"}, {"type": "tool_called"}],
}
CASES: list[dict[str, Any]] = [
    {"id": "one", "input": "first question", "expected": {"contains": "x"}},
    {"id": "two", "input": "second question"},
]


def code_error(config: Any = CONFIG, cases: Any = CASES) -> str:
    with pytest.raises(ConfigError) as info:
        suite_from(config, cases)
    return str(info.value)


def test_suite_from_dicts_matches_the_loaded_suite(tmp_path: Path) -> None:
    suite = suite_from(CONFIG, CASES, tmp_path)
    write(tmp_path, "cases.yaml", CASES_YAML)
    loaded = load_suite(write(tmp_path, "eval.yaml", EVAL_YAML))
    assert suite.config == loaded.config
    assert suite.cases == loaded.cases
    assert [e.name for e in suite.evaluators] == ["contains_text", "tool_called"]
    assert suite.config_hash == loaded.config_hash
    assert suite.dataset_hash == loaded.dataset_hash
    assert suite.folder == tmp_path
    assert suite.path == tmp_path / CODE_SUITE_NAME


def test_suite_from_models(tmp_path: Path) -> None:
    config = SuiteConfig.model_validate(CONFIG)
    cases: list[Case | dict[str, Any]] = [
        Case(id="one", input="hi"),
        {"id": "two", "input": "there"},
    ]
    suite = suite_from(config, cases, str(tmp_path))
    assert [c.id for c in suite.cases] == ["one", "two"]
    assert suite.folder == tmp_path


def test_suite_from_revalidates_a_changed_model() -> None:
    config = SuiteConfig.model_validate(CONFIG)
    config.concurrency = 0
    assert code_error(config) == "concurrency: Input should be greater than or equal to 1"


def test_suite_from_config_errors() -> None:
    assert code_error({**CONFIG, "concurrenc": 3}) == "concurrenc: unknown field"
    system = {"type": "command", "timeout_s": 5}
    assert code_error({**CONFIG, "system": system}) == "system.command: required field is missing"
    variants = [{"name": "a"}, {"name": "a"}]
    assert code_error({**CONFIG, "variants": variants}) == (
        "variants: variant names must be unique, repeated: a"
    )
    assert code_error(["not", "a", "mapping"]) == (
        "expected a mapping of suite settings (or a SuiteConfig)"
    )


def test_suite_from_evaluator_errors() -> None:
    evaluators = [{"type": "contains_text", "params": {"txet": "Paris"}}]
    message = code_error({**CONFIG, "evaluators": evaluators})
    assert message.startswith("evaluators[0].params.txet: "), message
    message = code_error({**CONFIG, "evaluators": [{"type": "tool_caled"}]})
    assert message.startswith("evaluators[0].type: "), message
    assert "tool_caled" in message


def test_suite_from_case_errors() -> None:
    assert code_error(cases=[*CASES, {"id": "three"}]) == (
        "cases[2].input: required field is missing"
    )
    assert code_error(cases=[*CASES, {"id": "one", "input": "again"}]) == (
        "cases[2].id: case id 'one' is used twice"
    )
    assert code_error(cases=[]) == "cases: expected a non-empty list of cases"
    assert code_error(cases={"id": "one", "input": "x"}) == (
        "cases: expected a non-empty list of cases"
    )
