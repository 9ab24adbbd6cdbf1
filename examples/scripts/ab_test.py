"""Beta users (header x-beta: 1) get cart v2; everyone else gets cart v1, within 5 s.

meshpy script run examples/scripts/ab_test.py --dry-run     # print what it would apply
meshpy script run examples/scripts/ab_test.py               # show the change, apply it
"""

from meshpy.rules import Client, ab_test, timeout

route = timeout(ab_test("cart", header=("x-beta", "1"), to="v2", default="v1"), "5s")

with Client() as mesh:
    if not mesh.dry_run:  # a dry run needs no server at all
        for change in mesh.diff(route):
            print(f"{change.kind} {change.namespace}/{change.name}: {change.action}")
            print(change.diff, end="")
    mesh.apply(route)
