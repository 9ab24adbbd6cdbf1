"""``meshpy up``: a whole mesh on one machine, from a mesh file.

- ``meshfile``: the mesh file's schema (pydantic, unknown fields refused) and its loader.
- ``runner``: ``Up.run()``: start, rollouts, watch, stop and summary, in that order.
- ``start``: the control plane, join tokens, resources, then the instances wave by wave.
- ``watch``: the registry's states and the sidecars' traffic, shown about once a second.
- ``stop``: the sidecars, then the control plane; SIGKILL after a deadline; none left behind.
- ``summary``: traffic per service and version, the rollouts' outcomes, mTLS, once stopped.
- ``state``: the options and what start, watch and stop share.
- ``controlplane``: the ``meshpy server`` child and its REST API.
- ``instance``: one replica, from its sidecar's events, metrics and stats.
- ``rollouts``: the mesh file's rollouts, each on a thread.
- ``procs``: the child processes, their logs, and the check that none is left behind.
- ``stats``: the sidecars' metrics, as rates over a window.
- ``display``: the live table on a terminal, plain lines otherwise.
"""
