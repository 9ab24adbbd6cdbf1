"""The service registry: SQL tables, every query, the lease state machine and migrations.

It knows SQL and nothing of HTTP: ``db`` makes engines and transactions, ``models`` holds
the tables, ``repository`` every query (each function takes a Session), ``leases`` the
pure health/lease state machine, ``migrations`` the Alembic scripts.
"""
