"""The control plane's REST API: FastAPI app factory, routers, auth, problems, change feed.

``create_app(settings)`` builds an app (nothing is made at import time);
``meshpy.api.server.serve`` runs one under uvicorn (``meshpy server``);
``python -m meshpy.api --openapi`` prints the OpenAPI document (api/openapi.json).
Imports run one way: api → registry → models; the registry knows no HTTP.

Exceptions, and what a client sees::

    Exception
    ├── api.problems.ProblemError          4xx problem document it describes
    ├── api.store.UnavailableError         503 + Retry-After: the database failed or was slow
    │      (SQLAlchemy's OperationalError, InterfaceError, pool TimeoutError, the deadline)
    ├── registry.repository.ServiceInUseError   409 on deleting a service with instances
    └── registry.migrations.SchemaError    the server refuses to start (one line, exit 1)
"""

from meshpy.api.app import create_app

__all__ = ["create_app"]
