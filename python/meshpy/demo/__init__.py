"""The demo shop of ``meshpy demo``: its apps (``shop.py``), its mesh file and its canary route.

``mesh.yaml`` runs cart (2 replicas), recommendation (2), payment v1 (2) and v2 (1, which
fails one charge in ten) behind a 90/10 canary HTTPRoute (``routes/payment-canary.yaml``,
named ``payment``), and a load generator sending checkouts to cart. 5 s after the mesh is
ready, its ``rollouts`` entry moves payment to v2 step by step, gated on v2's error rate
as the sidecars measure it: the first step fails and every request goes back to v1.
``meshpy up`` runs it as any other mesh file.
"""
