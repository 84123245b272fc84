"""Attribute, baggage and span names that tracescore reads or writes.

Kept in one place so the harness, the instrumentation helpers and the
reconstruction code cannot drift apart.
"""

from typing import Final

# Variants are told apart by a resource attribute; this is the default key.
DEFAULT_VARIANT_KEY: Final = "tracescore.variant"

# Identity of a suite case travels as W3C baggage and as root-span attributes.
RUN_ID: Final = "tracescore.run_id"
CASE_ID: Final = "tracescore.case_id"
SUITE: Final = "tracescore.suite"
REPEAT: Final = "tracescore.repeat"
VARIANT: Final = "tracescore.variant"
CASE_INPUT: Final = "tracescore.case.input"
SUT_OUTPUT: Final = "tracescore.sut.output"
SUT_EXIT_CODE: Final = "tracescore.sut.exit_code"

HARNESS_SERVICE_NAME: Final = "tracescore-harness"
EVALUATOR_SERVICE_NAME: Final = "tracescore-evaluators"
HARNESS_SPAN_PREFIX: Final = "tracescore.case"

SERVICE_NAME: Final = "service.name"

# OpenTelemetry GenAI semantic conventions (current form).
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_SYSTEM: Final = "gen_ai.system"  # older name of the provider attribute
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"

OP_CHAT: Final = "chat"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_GENERATE_CONTENT: Final = "generate_content"
OP_INVOKE_AGENT: Final = "invoke_agent"
OP_EXECUTE_TOOL: Final = "execute_tool"

LLM_OPERATIONS: Final = frozenset({OP_CHAT, OP_TEXT_COMPLETION, OP_GENERATE_CONTENT})
