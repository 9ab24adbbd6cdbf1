"""``python -m meshpy.api --openapi`` prints the OpenAPI document of the REST API."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from meshpy.api.app import create_app
from meshpy.settings import Settings


def openapi_json() -> str:
    """The OpenAPI document, as committed in api/openapi.json."""
    app = create_app(Settings(home=Path("/nonexistent")))  # never started: no files, no database
    return json.dumps(app.openapi(), indent=2, sort_keys=False) + "\n"


def main(argv: list[str]) -> int:
    """Print the OpenAPI document with --openapi; 2 for anything else."""
    if argv != ["--openapi"]:
        print("usage: python -m meshpy.api --openapi", file=sys.stderr)
        return 2
    sys.stdout.write(openapi_json())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
