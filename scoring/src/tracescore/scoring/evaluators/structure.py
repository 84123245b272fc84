"""Structure evaluators on the trace's final output: JSON validity and JSON Schema."""
