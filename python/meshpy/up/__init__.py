"""``meshpy up``: a whole mesh on one machine, from a mesh file.

- ``meshfile``: the mesh file's schema (pydantic, unknown fields refused) and its loader.
- ``runner``: starts the control plane and every instance, watches them, stops them in order.
- ``procs``: the child processes, their logs, and the check that none is left behind.
- ``stats``: the sidecars' metrics, as rates over a window.
- ``display``: the live table on a terminal, plain lines otherwise.
"""
