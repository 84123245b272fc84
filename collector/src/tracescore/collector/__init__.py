"""OTLP receivers, decoding, and the stores (chDB embedded, ClickHouse server)."""
