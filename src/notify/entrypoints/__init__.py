"""Thin process mains. Each builds Settings, configures logging, and hands over to a composition root."""
