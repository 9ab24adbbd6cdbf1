"""Send a share of payment's requests to its v2 instances, retrying failed ones.

meshpy script run examples/scripts/canary.py --dry-run     # print what it would apply
meshpy script run examples/scripts/canary.py -- 25          # 25 % to v2
"""

import sys

from meshpy.rules import Client, allow, canary, load_balancer, retry

weight = int(sys.argv[1]) if len(sys.argv) > 1 else 10

with Client() as mesh:
    mesh.apply(
        retry(
            canary("payment", stable="v1", candidate="v2", weight=weight),
            attempts=2,
            codes=[503],
        ),
        load_balancer("payment", "least_request"),
        allow("payment", from_=["cart", "checkout"], methods=["POST"]),
    )
