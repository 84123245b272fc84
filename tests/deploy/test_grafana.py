"""Grafana provisioning and dashboards: the files load as Grafana would read them, and every
panel's and variable's SQL, with the ClickHouse plugin's macros and variables expanded the
way the plugin expands them, runs against the real schema on seeded data in chDB."""

import json
import re
import secrets
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from tracescore.collector.spans_decode import SpanColumns
from tracescore.collector.store.chdb_store import ChdbStore
from tracescore.schemas.ddl import SCORES_TABLE
from tracescore.schemas.scores import Score
from tracescore.scoring.results import RunRecord, ScoredCase, write_cases, write_run

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DATASOURCES_YAML = GRAFANA / "provisioning" / "datasources" / "clickhouse.yaml"
PROVIDERS_YAML = GRAFANA / "provisioning" / "dashboards" / "tracescore.yaml"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
PLUGIN = "grafana-clickhouse-datasource"
ALL = "$__all"

# ---------------------------------------------------------------------------------------
# What the plugin does to rawSql before ClickHouse sees it.
# Frontend (CHDatasource.applyTemplateVariables): $__conditionalAll first, then Grafana's
# variable interpolation with the plugin's formatter (a multi-value list becomes 'a','b';
# a single value is inserted as is). Backend (pkg/macros): the time macros.
# ---------------------------------------------------------------------------------------

VarValue = str | list[str]

# Grafana's template-variable syntax: $name, [[name]], ${name}, ${name:format}.
_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}"
)


@dataclass(frozen=True)
class TimeRange:
    from_s: int
    to_s: int
    interval_s: int = 60


def macro_args(text: str, open_paren: int) -> tuple[list[str], int]:
    """The comma-separated arguments of the call whose '(' is at ``open_paren`` (nested
    parentheses kept whole, as the plugin's getMacroArgs does) and the index after ')'."""
    depth = 0
    args: list[str] = []
    start = open_paren + 1
    for i in range(open_paren, len(text)):
        char = text[i]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                args.append(text[start:i])
                return args, i + 1
        elif char == "," and depth == 1:
            args.append(text[start:i])
            start = i + 1
    raise AssertionError(f"unbalanced macro call at {text[open_paren : open_paren + 40]!r}")


def apply_conditional_all(sql: str, values: Mapping[str, VarValue]) -> str:
    macro = "$__conditionalAll("
    at = sql.rfind(macro)
    while at != -1:
        args, end = macro_args(sql, at + len(macro) - 1)
        assert len(args) == 2, f"$__conditionalAll takes 2 arguments: {args}"
        name = re.search(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+", args[1].strip())
        phrase = args[0]
        if name is not None:
            value = values.get(name.group(0))
            if value in ("", ALL, [ALL]):
                phrase = "1=1"
        sql = sql[:at] + phrase + sql[end:]
        at = sql.rfind(macro)
    return sql


def _format(value: VarValue, options: Sequence[str]) -> str:
    if value == [ALL]:
        value = list(options)
    if isinstance(value, list):
        return "'" + "','".join(value) + "'"
    return value


def interpolate(
    sql: str, values: Mapping[str, VarValue], options: Mapping[str, Sequence[str]]
) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        if name not in values:
            return match.group(0)  # a macro such as $__timeFilter, or a built-in
        return _format(values[name], options.get(name, ()))

    return _VARIABLE.sub(replace, sql)


def _to_datetime(seconds: int) -> str:
    return f"toDateTime({seconds})"


def expand_macros(sql: str, rng: TimeRange) -> str:
    out: list[str] = []
    pos = 0
    for match in re.finditer(r"\$__(\w+)", sql):
        if match.start() < pos:
            continue
        name = match.group(1)
        out.append(sql[pos : match.start()])
        end = match.end()
        args: list[str] = []
        if end < len(sql) and sql[end] == "(":
            args, end = macro_args(sql, end)
        if name == "timeFilter":
            (column,) = (a.strip() for a in args)
            out.append(
                f"{column} >= {_to_datetime(rng.from_s)} AND {column} <= {_to_datetime(rng.to_s)}"
            )
        elif name == "timeInterval":
            (column,) = (a.strip() for a in args)
            seconds = max(rng.interval_s, 1)
            out.append(f"toStartOfInterval(toDateTime({column}), INTERVAL {seconds} second)")
        elif name == "fromTime" and not args:
            out.append(_to_datetime(rng.from_s))
        elif name == "toTime" and not args:
            out.append(_to_datetime(rng.to_s))
        elif name == "interval_s" and not args:
            out.append(str(max(rng.interval_s, 1)))
        else:
            raise AssertionError(f"macro $__{name} is not one this test knows the plugin for")
        pos = end
    out.append(sql[pos:])
    return "".join(out)


def expand(
    sql: str,
    values: Mapping[str, VarValue],
    options: Mapping[str, Sequence[str]],
    rng: TimeRange,
) -> str:
    return expand_macros(interpolate(apply_conditional_all(sql, values), values, options), rng)


def test_expander_follows_the_plugin_documentation() -> None:
    rng = TimeRange(1415792726, 1447328726, 20)
    assert expand("WHERE $__timeFilter(time)", {}, {}, rng) == (
        "WHERE time >= toDateTime(1415792726) AND time <= toDateTime(1447328726)"
    )
    assert expand("$__timeInterval(column)", {}, {}, rng) == (
        "toStartOfInterval(toDateTime(column), INTERVAL 20 second)"
    )
    assert expand("$__fromTime $__toTime $__interval_s", {}, {}, rng) == (
        "toDateTime(1415792726) toDateTime(1447328726) 20"
    )
    sql = "$__conditionalAll(x IN (${v}), $v) AND y = '${k}'"
    assert expand(sql, {"v": [ALL], "k": "a.b"}, {"v": ["p", "q"]}, rng) == "1=1 AND y = 'a.b'"
    assert expand(sql, {"v": ["p", "q"], "k": "c"}, {}, rng) == "x IN ('p','q') AND y = 'c'"
    with pytest.raises(AssertionError, match="not one this test knows"):
        expand("$__timeFilter_ms(t)", {}, {}, rng)


# ---------------------------------------------------------------------------------------
# Loading the files as Grafana reads them.
# ---------------------------------------------------------------------------------------


def load_dashboard(path: Path) -> dict[str, Any]:
    loaded = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def provisioned_datasource() -> dict[str, Any]:
    loaded = yaml.safe_load(DATASOURCES_YAML.read_text(encoding="utf-8"))
    sources = loaded["datasources"]
    assert isinstance(sources, list) and len(sources) == 1
    source = sources[0]
    assert isinstance(source, dict)
    return source


def panels_of(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))  # panels inside a collapsed row
    return found


def variables_of(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    variables: list[dict[str, Any]] = dashboard["templating"]["list"]
    return variables


def all_panels() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, panel) for p in DASHBOARD_FILES for panel in panels_of(load_dashboard(p))]


def test_there_are_dashboards() -> None:
    assert DASHBOARD_FILES, f"no dashboards in {GRAFANA / 'dashboards'}"


def test_datasource_provisioning() -> None:
    loaded = yaml.safe_load(DATASOURCES_YAML.read_text(encoding="utf-8"))
    assert loaded["apiVersion"] == 1
    source = provisioned_datasource()
    assert source["type"] == PLUGIN
    assert source["uid"]
    json_data = source["jsonData"]
    for key in ("host", "port", "protocol", "defaultDatabase"):
        assert re.fullmatch(r"\$\{[A-Z_]+\}", str(json_data[key])), key
    assert json_data["traces"]["defaultTable"] == "otel_traces"
    assert json_data["logs"]["defaultTable"] == "otel_logs"
    # Every environment variable the file needs is documented next to it.
    readme = (GRAFANA / "README.md").read_text(encoding="utf-8")
    for name in re.findall(r"\$\{(\w+)\}", DATASOURCES_YAML.read_text(encoding="utf-8")):
        assert name in readme, f"{name} is not documented in deploy/grafana/README.md"


def test_dashboard_provider_points_at_the_dashboards_folder() -> None:
    loaded = yaml.safe_load(PROVIDERS_YAML.read_text(encoding="utf-8"))
    assert loaded["apiVersion"] == 1
    (provider,) = loaded["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    assert path.startswith("/")
    # The folder is mounted there; the README says so, and the compose file must do it.
    readme = (GRAFANA / "README.md").read_text(encoding="utf-8")
    assert f"deploy/grafana/dashboards:{path}" in readme


def _datasource_refs(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            yield from _datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasource_refs(item)


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_is_loadable(path: Path) -> None:
    dashboard = load_dashboard(path)
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] and dashboard["title"]
    assert "id" not in dashboard or dashboard["id"] is None  # provisioning assigns ids
    panels = panels_of(dashboard)
    ids = [p["id"] for p in panels]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    boxes: list[tuple[int, int, int, int, str]] = []
    for panel in panels:
        grid = panel["gridPos"]
        x, y, w, h = (grid[k] for k in ("x", "y", "w", "h"))
        assert all(isinstance(v, int) for v in (x, y, w, h)), panel["title"]
        assert x >= 0 and x + w <= 24 and w > 0 and h > 0, panel["title"]
        boxes.append((x, y, w, h, panel["title"]))
    for i, (x, y, w, h, title) in enumerate(boxes):
        for x2, y2, w2, h2, other in boxes[i + 1 :]:
            overlap = x < x2 + w2 and x2 < x + w and y < y2 + h2 and y2 < y + h
            assert not overlap, f"panels {title!r} and {other!r} overlap"


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_every_datasource_is_the_provisioned_one(path: Path) -> None:
    source = provisioned_datasource()
    dashboard = load_dashboard(path)
    refs = list(_datasource_refs(dashboard))
    assert refs
    for ref in refs:
        assert isinstance(ref, dict), f"datasource by name instead of uid: {ref!r}"
        if ref.get("type") == "grafana":  # the built-in annotations source
            continue
        assert ref == {"type": PLUGIN, "uid": source["uid"]}
    for panel in panels_of(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["editorType"] == "sql"
            assert target["rawSql"].strip()
            # sqlds formats: 0 time series, 1 table.
            expected = 0 if panel["type"] == "timeseries" else 1
            assert target["format"] == expected, panel["title"]
            assert target["queryType"] == ("timeseries" if expected == 0 else "table")


def _used_variables(text: str) -> set[str]:
    names = set()
    for match in _VARIABLE.finditer(text):
        name = match.group(1) or match.group(2) or match.group(4)
        if not name.startswith("__"):
            names.add(name)
    return names


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_every_variable_used_is_defined(path: Path) -> None:
    dashboard = load_dashboard(path)
    variables = variables_of(dashboard)
    defined = [v["name"] for v in variables]
    assert len(defined) == len(set(defined))
    texts = [p["title"] for p in panels_of(dashboard)]
    texts += [t["rawSql"] for p in panels_of(dashboard) for t in p.get("targets", [])]
    texts += [v["query"] for v in variables if v["type"] == "query"]
    used = set().union(*(_used_variables(t) for t in texts))
    assert used <= set(defined), f"undefined variables: {sorted(used - set(defined))}"
    assert {"suite", "variant_key", "variant", "evaluator", "service"} <= used
    key = next(v for v in variables if v["name"] == "variant_key")
    assert key["type"] == "textbox" and key["query"] == "tracescore.variant"
    # A query variable may only use variables defined before it.
    for i, variable in enumerate(variables):
        if variable["type"] == "query":
            assert _used_variables(variable["query"]) <= set(defined[:i]), variable["name"]


# ---------------------------------------------------------------------------------------
# Running every query on seeded data.
# ---------------------------------------------------------------------------------------

VARIANTS = ("strong", "weak")
VERSIONS = {"strong": "v1", "weak": "v2"}
CASES = 4
WATCH_RUN = "watch:prod"


@dataclass
class Seed:
    store: ChdbStore
    conn: Any
    now_s: int
    trace_ids: dict[tuple[str, int], str]
    span_counts: dict[str, int]
    watch_trace: str

    def run(self, sql: str) -> pa.Table:
        result = self.conn.query(sql, "ArrowTable")
        assert isinstance(result, pa.Table)
        return result


def _tid(n: int) -> str:
    return f"{n:032x}"


def _add_span(
    cols: SpanColumns,
    *,
    trace: str,
    span: str,
    parent: str,
    name: str,
    start_ns: int,
    duration_ns: int,
    variant: str,
    attributes: list[tuple[str, str]],
    status: str = "Unset",
) -> None:
    cols.add_span(
        timestamp=start_ns,
        trace_id=trace,
        span_id=span,
        parent_span_id=parent,
        name=name,
        kind="Internal",
        service_name="agent",
        resource_attributes=[
            ("service.name", "agent"),
            ("tracescore.variant", variant),
            ("service.version", VERSIONS[variant]),
        ],
        scope_name="test",
        scope_version="1",
        attributes=attributes,
        duration=duration_ns,
        status_code=status,
        status_message="boom" if status != "Unset" else "",
    )


def _add_trace(cols: SpanColumns, trace: str, variant: str, start_ns: int, n: int) -> int:
    """A root, an LLM call with usage, a tool call; returns the number of spans."""
    root = trace[:16]
    base_ms = 100 if variant == "strong" else 300
    _add_span(
        cols,
        trace=trace,
        span=root,
        parent="",
        name="invoke_agent",
        start_ns=start_ns,
        duration_ns=(base_ms + n) * 1_000_000,
        variant=variant,
        attributes=[("gen_ai.operation.name", "invoke_agent")],
    )
    _add_span(
        cols,
        trace=trace,
        span=trace[16:],
        parent=root,
        name="chat gpt-4o",
        start_ns=start_ns + 1_000_000,
        duration_ns=50_000_000,
        variant=variant,
        attributes=[
            ("gen_ai.operation.name", "chat"),
            ("gen_ai.usage.input_tokens", "100"),
            ("gen_ai.usage.output_tokens", "20"),
        ],
    )
    # The weak variant's first tool call fails, once in each exporter spelling.
    status = "Unset"
    if variant == "weak" and n == 0:
        status = "Error"
    elif variant == "weak" and n == 1:
        status = "STATUS_CODE_ERROR"
    _add_span(
        cols,
        trace=trace,
        span=f"{n + 1:016x}",
        parent=root,
        name="execute_tool search",
        start_ns=start_ns + 60_000_000,
        duration_ns=10_000_000,
        variant=variant,
        attributes=[("gen_ai.operation.name", "execute_tool"), ("gen_ai.tool.name", "search")],
        status=status,
    )
    return 3


def _case(variant: str, n: int, trace: str, answer_passed: bool) -> ScoredCase:
    tools_passed = variant == "strong"
    return ScoredCase(
        case_id=f"case-{n}",
        variant=variant,
        repeat=0,
        trace_id=trace,
        status="passed" if answer_passed and tools_passed else "failed",
        input=f"question {n}",
        output="answer",
        scores=[
            Score(evaluator="answer", value=1.0 if answer_passed else 0.0, passed=answer_passed),
            Score(evaluator="used_tools", value=1.0 if tools_passed else 0.0, passed=tools_passed),
            Score.skip("judge", "no rubric for this case"),
        ],
        score_configs={
            "answer": ("contains_text", "h1"),
            "used_tools": ("tool_called", "h2"),
            "judge": ("llm_judge", "h3"),
        },
        duration_ns=(100 if variant == "strong" else 300) * 1_000_000,
        span_count=3,
        input_tokens=100,
        output_tokens=20,
        cost_usd=0.001 if variant == "strong" else 0.002,
    )


def _seed(store: ChdbStore) -> tuple[dict[tuple[str, int], str], dict[str, int], str]:
    now_ns = time.time_ns()
    cols = SpanColumns()
    trace_ids: dict[tuple[str, int], str] = {}
    span_counts: dict[str, int] = {}
    counter = 1
    for variant in VARIANTS:
        for n in range(CASES):
            trace = _tid(counter)
            trace_ids[(variant, n)] = trace
            start = now_ns - (20 - counter) * 60 * 10**9
            span_counts[trace] = _add_trace(cols, trace, variant, start, n)
            counter += 1
    watch_trace = _tid(counter)
    span_counts[watch_trace] = _add_trace(cols, watch_trace, "strong", now_ns - 60 * 10**9, 9)
    store.insert_spans(cols)

    run = RunRecord(
        run_id="run-1",
        suite="demo",
        config_path="configs/demo/eval.yaml",
        variant_key="tracescore.variant",
        variants=list(VARIANTS),
        config_hash="c",
        dataset_hash="d",
        git_sha="abc123",
        git_dirty=False,
        version="0.0.0",
        started_ns=now_ns - 30 * 60 * 10**9,
        finished_ns=now_ns,
        status="finished",
    )
    # strong answers every case; weak only case 0 at first.
    run.cases = [
        _case(v, n, trace_ids[(v, n)], answer_passed=(v == "strong" or n == 0))
        for v in VARIANTS
        for n in range(CASES)
    ]
    write_cases(store, run, run.cases)
    write_run(store, run)
    time.sleep(0.002)  # a later version timestamp for the re-score below
    # Re-scoring weak case 1 replaces its scores (ReplacingMergeTree): answer now passes.
    write_cases(store, run, [_case("weak", 1, trace_ids[("weak", 1)], answer_passed=True)])

    # An online score from `tracescore watch`, outside every suite run.
    micros = time.time_ns() // 1000
    store.insert_arrow(
        SCORES_TABLE,
        pa.table(
            {
                "Timestamp": pa.array([micros], pa.timestamp("us", tz="UTC")),
                "TraceId": [watch_trace],
                "RunId": [WATCH_RUN],
                "CaseId": [""],
                "Variant": ["strong"],
                "Evaluator": ["answer"],
                "EvaluatorType": ["contains_text"],
                "ConfigHash": ["h1"],
                "Value": pa.array([0.0], pa.float64()),
                "Passed": pa.array([False], pa.bool_()),
                "Label": [""],
                "Explanation": ["missed"],
                "Error": [""],
            }
        ),
    )
    return trace_ids, span_counts, watch_trace


@pytest.fixture(scope="module")
def seed(chdb_path: Path) -> Iterator[Seed]:
    store = ChdbStore(chdb_path, database=f"test_grafana_{secrets.token_hex(4)}")
    conn: Any = None
    try:
        store.migrate()
        trace_ids, span_counts, watch_trace = _seed(store)
        # The dashboards name tables without a database, as the datasource's default
        # database supplies it: a connection of its own with that database in use.
        conn = store.connect()
        conn.query(f"USE {store.db}")
        yield Seed(store, conn, int(time.time()), trace_ids, span_counts, watch_trace)
    finally:
        if conn is not None:
            conn.close()
        store.command(f"DROP DATABASE IF EXISTS {store.db}")
        store.close()


def _range(seed: Seed) -> TimeRange:
    return TimeRange(seed.now_s - 3600, seed.now_s + 300, 60)


OPTIONS: dict[str, list[str]] = {
    "suite": ["demo"],
    "variant": list(VARIANTS),
    "evaluator": ["answer", "judge", "used_tools"],
    "service": ["agent"],
}

SCENARIOS: dict[str, dict[str, VarValue]] = {
    "all": {
        "suite": [ALL],
        "variant_key": "tracescore.variant",
        "variant": [ALL],
        "variant_a": "strong",
        "variant_b": "weak",
        "evaluator": [ALL],
        "service": [ALL],
    },
    "selected": {
        "suite": ["demo"],
        "variant_key": "tracescore.variant",
        "variant": ["strong", "weak"],
        "variant_a": "strong",
        "variant_b": "weak",
        "evaluator": ["answer", "used_tools"],
        "service": ["agent"],
    },
}

# The columns each panel's query returns, by panel title.
EXPECTED_COLUMNS: dict[str, list[str]] = {
    "Pass rate per evaluator and variant": ["time", "series", "pass_rate"],
    "Mean score per evaluator and variant": ["time", "series", "mean_score"],
    "Regressions: $variant_a → $variant_b": [
        "evaluator",
        "pass_rate_a",
        "pass_rate_b",
        "delta",
        "mean_score_a",
        "mean_score_b",
        "decided_a",
        "decided_b",
    ],
    "Worst-scoring traces": [
        "TraceId",
        "variant",
        "run_id",
        "case_id",
        "failed",
        "evaluators",
        "mean_score",
        "failed_evaluators",
        "scored_at",
    ],
    "Latency per variant (root spans)": ["time", "variant", "p50_ms", "p95_ms", "p99_ms"],
    "Latency summary per variant": ["variant", "traces", "p50_ms", "p95_ms", "p99_ms", "max_ms"],
    "Tokens per variant (all traces)": ["time", "variant", "input_tokens", "output_tokens"],
    "Error spans": ["time", "service", "error_spans"],
    "Tokens per variant (suite runs)": ["time", "variant", "input_tokens", "output_tokens"],
    "Cost per variant (suite runs)": ["time", "variant", "cost_usd"],
    "Since last online score": ["lag_seconds"],
    "Suite runs": [
        "run_id",
        "suite",
        "started_at",
        "status",
        "variants",
        "cases",
        "passed",
        "failed",
        "errors",
        "git_sha",
    ],
}


def test_every_panel_has_expected_columns() -> None:
    titles = [panel["title"] for _, panel in all_panels() if panel["type"] != "row"]
    assert sorted(titles) == sorted(EXPECTED_COLUMNS)


def run_panel(
    seed: Seed, panel: Mapping[str, Any], values: Mapping[str, VarValue]
) -> list[pa.Table]:
    return [seed.run(expand(t["rawSql"], values, OPTIONS, _range(seed))) for t in panel["targets"]]


PANEL_CASES = [
    pytest.param(panel, scenario, id=f"{name}:{panel['title']}:{scenario}")
    for name, panel in all_panels()
    if panel["type"] != "row"
    for scenario in SCENARIOS
]


@pytest.mark.parametrize(("panel", "scenario"), PANEL_CASES)
def test_panel_sql_runs_on_seeded_data(seed: Seed, panel: dict[str, Any], scenario: str) -> None:
    for result in run_panel(seed, panel, SCENARIOS[scenario]):
        assert result.column_names == EXPECTED_COLUMNS[panel["title"]]
        assert result.num_rows > 0, f"{panel['title']} returned no rows on the seeded data"
        if panel["type"] == "timeseries":
            assert pa.types.is_timestamp(result.schema.field("time").type) or pa.types.is_uint32(
                result.schema.field("time").type
            )


def _panel(title: str) -> dict[str, Any]:
    return next(panel for _, panel in all_panels() if panel["title"] == title)


def _rows(seed: Seed, title: str, values: Mapping[str, VarValue]) -> list[dict[str, Any]]:
    (result,) = run_panel(seed, _panel(title), values)
    rows: list[dict[str, Any]] = result.to_pylist()
    return rows


def test_regressions_compare_latest_scores_of_the_two_variants(seed: Seed) -> None:
    values = SCENARIOS["selected"] | {"evaluator": [ALL]}
    rows = {r["evaluator"]: r for r in _rows(seed, "Regressions: $variant_a → $variant_b", values)}
    assert set(rows) == {"answer", "used_tools", "judge"}
    # weak passed case 0, and case 1 after its re-score replaced the first score: 2 of 4,
    # not 1 of 4 (first score) nor 2 of 5 (both kept).
    assert rows["answer"]["pass_rate_a"] == 1.0
    assert rows["answer"]["pass_rate_b"] == 0.5
    assert rows["answer"]["decided_b"] == CASES
    assert rows["used_tools"]["delta"] == -1.0
    # Skipped scores decide nothing: no pass rate, no count.
    assert rows["judge"]["decided_a"] == 0
    # Worst first.
    ordered = _rows(seed, "Regressions: $variant_a → $variant_b", values)
    assert ordered[0]["evaluator"] == "used_tools"


def test_suite_filter_leaves_online_scores_out(seed: Seed) -> None:
    demo = SCENARIOS["all"] | {"suite": ["demo"]}
    traces = {r["TraceId"] for r in _rows(seed, "Worst-scoring traces", demo)}
    assert seed.watch_trace not in traces
    traces_all = {r["TraceId"] for r in _rows(seed, "Worst-scoring traces", SCENARIOS["all"])}
    assert seed.watch_trace in traces_all


def test_worst_traces_rank_failures_first(seed: Seed) -> None:
    rows = _rows(seed, "Worst-scoring traces", SCENARIOS["selected"])
    worst = rows[0]
    assert worst["variant"] == "weak" and worst["failed"] == 2
    assert worst["failed_evaluators"] == "answer, used_tools"
    assert rows[-1]["failed"] == 0
    assert [r["failed"] for r in rows] == sorted((r["failed"] for r in rows), reverse=True)


def test_latency_splits_by_the_chosen_variant_attribute(seed: Seed) -> None:
    rows = _rows(seed, "Latency summary per variant", SCENARIOS["all"])
    by_variant = {r["variant"]: r for r in rows}
    assert by_variant["strong"]["traces"] == CASES + 1  # plus the production trace
    assert by_variant["weak"]["traces"] == CASES
    assert 100 <= by_variant["strong"]["p50_ms"] < by_variant["weak"]["p50_ms"]
    by_version = SCENARIOS["all"] | {"variant_key": "service.version", "variant": ["v2"]}
    rows = _rows(seed, "Latency summary per variant", by_version)
    assert [r["variant"] for r in rows] == ["v2"]


def test_error_spans_count_both_status_spellings(seed: Seed) -> None:
    rows = _rows(seed, "Error spans", SCENARIOS["all"])
    assert sum(r["error_spans"] for r in rows) == 2


def test_tokens_and_cost_per_variant(seed: Seed) -> None:
    spans = _rows(seed, "Tokens per variant (all traces)", SCENARIOS["all"])
    weak = [r for r in spans if r["variant"] == "weak"]
    assert sum(r["input_tokens"] for r in weak) == 100 * CASES
    assert sum(r["output_tokens"] for r in weak) == 20 * CASES
    cost = _rows(seed, "Cost per variant (suite runs)", SCENARIOS["all"])
    totals = {v: sum(r["cost_usd"] for r in cost if r["variant"] == v) for v in VARIANTS}
    assert totals["strong"] == pytest.approx(0.001 * CASES)
    assert totals["weak"] == pytest.approx(0.002 * CASES)
    runs = _rows(seed, "Tokens per variant (suite runs)", SCENARIOS["all"])
    assert sum(r["input_tokens"] for r in runs) == 100 * CASES * len(VARIANTS)


def test_online_scoring_lag(seed: Seed) -> None:
    (row,) = _rows(seed, "Since last online score", SCENARIOS["all"])
    assert row["lag_seconds"] is not None
    assert 0 <= row["lag_seconds"] <= int(time.time()) - seed.now_s + 60


def test_variable_queries_list_the_seeded_values(seed: Seed) -> None:
    (path,) = [p for p in DASHBOARD_FILES if p.name == "tracescore.json"]
    variables = {v["name"]: v for v in variables_of(load_dashboard(path))}

    def values_of(name: str, key: str = "tracescore.variant") -> list[str]:
        sql = expand(variables[name]["query"], {"variant_key": key}, {}, _range(seed))
        result = seed.run(sql)
        assert result.num_columns == 1
        return [str(v) for v in result.column(0).to_pylist()]

    assert values_of("suite") == ["demo"]
    assert values_of("variant") == ["strong", "weak"]
    assert values_of("variant_a") == values_of("variant_b") == ["strong", "weak"]
    assert set(values_of("variant", "service.version")) == {"strong", "weak", "v1", "v2"}
    assert values_of("evaluator") == ["answer", "judge", "used_tools"]
    assert values_of("service") == ["agent"]


TRACE_VIEW_COLUMNS = [
    "traceID",
    "spanID",
    "operationName",
    "parentSpanID",
    "serviceName",
    "duration",
    "startTime",
    "tags",
    "serviceTags",
]


def test_worst_traces_link_opens_the_trace_view(seed: Seed) -> None:
    panel = _panel("Worst-scoring traces")
    (override,) = [
        o for o in panel["fieldConfig"]["overrides"] if o["matcher"]["options"] == "TraceId"
    ]
    (links,) = [p["value"] for p in override["properties"] if p["id"] == "links"]
    (link,) = links
    url = urllib.parse.urlsplit(link["url"])
    assert url.path == "/explore"
    trace = seed.trace_ids[("weak", 2)]
    # Grafana fills in these data-link variables when the link is clicked.
    filled = (
        url.query.replace("${__value.raw}", trace)
        .replace("${__from}", str((seed.now_s - 3600) * 1000))
        .replace("${__to}", str(seed.now_s * 1000))
    )
    assert "${" not in filled
    params = urllib.parse.parse_qs(filled)
    assert params["schemaVersion"] == ["1"]
    (pane,) = json.loads(params["panes"][0]).values()
    source = provisioned_datasource()
    assert pane["datasource"] == source["uid"]
    (query,) = pane["queries"]
    assert query["datasource"] == {"type": PLUGIN, "uid": source["uid"]}
    assert query["format"] == 3 and query["queryType"] == "traces"  # the plugin's trace format
    result = seed.run(query["rawSql"])
    assert result.column_names == TRACE_VIEW_COLUMNS
    assert result.num_rows == seed.span_counts[trace]
    assert set(result.column("traceID").to_pylist()) == {trace}
