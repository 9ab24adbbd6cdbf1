"""``python -m meshpy.sidecar OPTIONS_JSON``: the light process ``meshpy run`` execs into."""

from __future__ import annotations

import os
import sys

from meshpy.sidecar.main import options_from_json, run


def main() -> int:
    """Run the sidecar described by ``sys.argv[1]``; the token comes from ``MESHPY_TOKEN``."""
    if len(sys.argv) != 2:
        sys.stderr.write("usage: meshpy run --service NAME ... (this module is its back end)\n")
        return 2
    options, drain_s, addresses_json = options_from_json(
        sys.argv[1], token=os.environ.get("MESHPY_TOKEN", "")
    )
    return run(options, drain_s=drain_s, addresses_json=addresses_json)


if __name__ == "__main__":
    sys.exit(main())
