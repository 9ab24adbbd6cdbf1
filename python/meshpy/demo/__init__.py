"""The demo shop of ``meshpy demo``: its apps (``shop.py``), its mesh file and its canary route.

``mesh.yaml`` runs cart (2 replicas), recommendation (2), payment v1 (2) and v2 (1) behind
a 90/10 canary HTTPRoute (``routes/payment-canary.yaml``), and a load generator sending
checkouts to cart; ``meshpy up`` runs it as any other mesh file.
"""
