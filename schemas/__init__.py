"""Bundled data (JSON Schemas, bhyve facts, target profiles); installed as migrate.schemas."""
