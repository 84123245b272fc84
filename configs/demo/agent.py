"""A small, self-contained demo agent that emits OpenTelemetry GenAI spans.

It answers one question per process with a scripted stand-in for the LLM, so
it needs no API key and no network beyond sending its spans:

    python agent.py "What is the capital of France?"

Spans: ``invoke_agent demo-agent`` around the run, ``chat scripted-llm-1`` for
each model turn (with token usage and messages), ``execute_tool <name>`` for
each tool call (with arguments and result). ``DEMO_AGENT_SKILL=weak`` makes a
deliberately worse agent that answers from "memory" instead of using tools.
"""

import ast
import json
import operator
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tracescore.instrumentation import attached, case_baggage, configure, context_from_env

AGENT_NAME = "demo-agent"
MODEL = "scripted-llm-1"
PROVIDER = "scripted"

CAPITALS = {"france": "Paris", "japan": "Tokyo", "portugal": "Lisbon", "kenya": "Nairobi"}
WEATHER = {"lisbon": "sunny, 24°C", "paris": "cloudy, 15°C", "tokyo": "rainy, 18°C"}
# What the weak agent "remembers" instead of looking things up.
WEAK_MEMORY = {"france": "Paris", "japan": "Kyoto"}

_OPERATORS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


class ToolError(Exception):
    pass


def calculate(expression: str) -> float:
    """Evaluate + - * / arithmetic without eval()."""

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return float(_OPERATORS[type(node.op)](walk(node.left), walk(node.right)))
        raise ToolError(f"unsupported expression: {expression}")

    return walk(ast.parse(expression, mode="eval").body)


def lookup_capital(country: str) -> str:
    capital = CAPITALS.get(country.lower())
    if capital is None:
        raise ToolError(f"unknown country: {country}")
    return capital


def get_weather(city: str) -> str:
    return WEATHER.get(city.lower(), "unknown")


TOOLS: dict[str, Callable[..., Any]] = {
    "calculator": calculate,
    "lookup_capital": lookup_capital,
    "get_weather": get_weather,
}


def number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.4g}"


@dataclass
class ToolRequest:
    name: str
    arguments: dict[str, str]
    call_id: str


@dataclass
class Plan:
    """What the scripted model decides for a question."""

    tool: ToolRequest | None = None
    direct_answer: str | None = None
    compose: Callable[[Any, str | None], str] = field(default=lambda result, error: str(result))


def plan(question: str, skill: str) -> Plan:
    text = question.strip().rstrip("?.!")
    arithmetic = re.search(r"what is ([\d\s()+\-*/.]+)$", text, re.IGNORECASE)
    capital = re.search(r"capital of (\w+)", text, re.IGNORECASE)
    weather = re.search(r"weather in (\w+)", text, re.IGNORECASE)
    if arithmetic:
        expression = arithmetic.group(1).strip()
        if skill == "weak":
            guess = calculate(expression)
            # "Mental math": products come out wrong.
            if "*" in expression:
                guess += 10
            return Plan(direct_answer=f"{expression} = {number(guess)}")
        return Plan(
            tool=ToolRequest("calculator", {"expression": expression}, "call_calc_1"),
            compose=lambda result, error: f"{expression} = {number(result)}",
        )
    if capital:
        country = capital.group(1)
        if skill == "weak":
            remembered = WEAK_MEMORY.get(country.lower(), "I am not sure")
            return Plan(direct_answer=f"The capital of {country} is {remembered}.")
        return Plan(
            tool=ToolRequest("lookup_capital", {"country": country}, "call_capital_1"),
            compose=lambda result, error: (
                f"I could not find the capital of {country}."
                if error
                else f"The capital of {country} is {result}."
            ),
        )
    if weather:
        city = weather.group(1)
        return Plan(
            tool=ToolRequest("get_weather", {"city": city}, "call_weather_1"),
            compose=lambda result, error: f"The weather in {city} is {result}.",
        )
    if re.search(r"\bhello\b", text, re.IGNORECASE):
        return Plan(direct_answer="Hello! How can I help you today?")
    return Plan(direct_answer="I can do arithmetic, capitals and weather.")


def tokens(messages: list[dict[str, Any]]) -> int:
    """A deterministic stand-in for a tokenizer: about 4 characters a token."""
    return max(1, len(json.dumps(messages)) // 4)


def text_message(role: str, content: str, finish_reason: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": role, "parts": [{"type": "text", "content": content}]}
    if finish_reason:
        message["finish_reason"] = finish_reason
    return message


class ScriptedAgent:
    def __init__(self, skill: str) -> None:
        self.skill = skill
        self.tracer = trace.get_tracer("demo-agent", "0.1.0")
        self.turn = 0

    def chat(self, messages: list[dict[str, Any]], reply: dict[str, Any], finish: str) -> None:
        self.turn += 1
        with self.tracer.start_as_current_span(f"chat {MODEL}", kind=SpanKind.CLIENT) as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": PROVIDER,
                    "gen_ai.request.model": MODEL,
                    "gen_ai.response.model": MODEL,
                    "gen_ai.response.id": f"resp_{self.turn}",
                    "gen_ai.response.finish_reasons": [finish],
                    "gen_ai.usage.input_tokens": tokens(messages),
                    "gen_ai.usage.output_tokens": tokens([reply]),
                    "gen_ai.input.messages": json.dumps(messages),
                    "gen_ai.output.messages": json.dumps([reply]),
                }
            )

    def call_tool(self, request: ToolRequest) -> tuple[Any, str | None]:
        with self.tracer.start_as_current_span(
            f"execute_tool {request.name}", kind=SpanKind.INTERNAL
        ) as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": request.name,
                    "gen_ai.tool.type": "function",
                    "gen_ai.tool.call.id": request.call_id,
                    "gen_ai.tool.call.arguments": json.dumps(request.arguments),
                }
            )
            try:
                result = TOOLS[request.name](**request.arguments)
            except ToolError as exc:
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                span.set_attribute("error.type", "ToolError")
                return None, str(exc)
            span.set_attribute("gen_ai.tool.call.result", json.dumps(result))
            return result, None

    def answer(self, question: str) -> str:
        messages = [text_message("user", question)]
        with self.tracer.start_as_current_span(
            f"invoke_agent {AGENT_NAME}", kind=SpanKind.INTERNAL
        ) as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": AGENT_NAME,
                    "gen_ai.provider.name": PROVIDER,
                    "gen_ai.request.model": MODEL,
                    "gen_ai.input.messages": json.dumps(messages),
                    # The run and case ids the harness sent as W3C baggage.
                    **case_baggage(),
                }
            )
            decision = plan(question, self.skill)
            if decision.tool is None:
                final = decision.direct_answer or ""
            else:
                request = decision.tool
                call = {
                    "role": "assistant",
                    "parts": [
                        {
                            "type": "tool_call",
                            "id": request.call_id,
                            "name": request.name,
                            "arguments": request.arguments,
                        }
                    ],
                    "finish_reason": "tool_call",
                }
                self.chat(messages, call, "tool_call")
                result, error = self.call_tool(request)
                response = {
                    "role": "tool",
                    "parts": [
                        {
                            "type": "tool_call_response",
                            "id": request.call_id,
                            "response": error or result,
                        }
                    ],
                }
                messages = [*messages, call, response]
                final = decision.compose(result, error)
            self.chat(messages, text_message("assistant", final, "stop"), "stop")
            span.set_attribute(
                "gen_ai.output.messages", json.dumps([text_message("assistant", final, "stop")])
            )
        return final


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: agent.py QUESTION", file=sys.stderr)
        return 2
    provider = configure(service_name=AGENT_NAME)
    skill = os.environ.get("DEMO_AGENT_SKILL", "strong")
    try:
        # Join the caller's trace (TRACEPARENT/BAGGAGE set by `tracescore run`).
        with attached(context_from_env()):
            print(ScriptedAgent(skill).answer(argv[1]))
    finally:
        provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
