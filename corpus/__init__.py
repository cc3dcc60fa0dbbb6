"""The bundled sample corpus; installed as migrate.corpus."""
