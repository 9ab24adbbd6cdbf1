"""Unit tests: models, parsing, CLI wiring; no sockets, no child processes."""
