"""Traces (OpenTelemetry, exported over OTLP/HTTP) and Prometheus metrics."""
