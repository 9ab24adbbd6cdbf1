"""meshpy tests: unit/ (no processes) and integration/ (real processes on 127.0.0.1)."""
