-- Which table an arrival row came from, so `tracescore watch` can follow another
-- otel_traces-shaped table (e.g. the OpenTelemetry Collector exporter's, in its own
-- database): the watcher adds a view on that table writing 'database.table' here. The
-- view of migration 0006 leaves it '' (the store's own otel_traces).
ALTER TABLE {database}.tracescore_trace_arrivals ADD COLUMN IF NOT EXISTS Source LowCardinality(String) DEFAULT '';
