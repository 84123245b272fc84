"""Budget evaluators: latency, tokens."""
