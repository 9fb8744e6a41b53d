"""``brokergate run``: a long-running service that holds a declared set of sessions on their
schedules, and serves metrics, health, status and a status page (docs/operations.md).

Needs the ops extra (``pip install 'brokergate[ops]'``). The modules here:

    _file        the sessions file (TOML): its loader and the errors that name line and field
    _supervisor  each declared session held on its schedule, watched for the status and health
    _web         the ASGI application: /metrics, /healthz, /status, the page
    _page        the status page
    _service     the program: the gateway, the HTTP server, the signals
"""

from brokergate.engine.service._file import (
    FileProblem,
    ServiceFile,
    ServiceFileError,
    ServiceSettings,
    SessionEntry,
    load_service_file,
)
from brokergate.engine.service._service import (
    EXIT_BAD_FILE,
    EXIT_STOP_OVERRAN,
    EXIT_STOPPED,
    Service,
    serve,
)
from brokergate.engine.service._supervisor import Held, Supervisor

__all__ = [
    "EXIT_BAD_FILE",
    "EXIT_STOPPED",
    "EXIT_STOP_OVERRAN",
    "FileProblem",
    "Held",
    "Service",
    "ServiceFile",
    "ServiceFileError",
    "ServiceSettings",
    "SessionEntry",
    "Supervisor",
    "load_service_file",
    "serve",
]
