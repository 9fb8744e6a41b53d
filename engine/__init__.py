"""brokergate's runtime: the trio driver, sessions, transports, audit trail, CLI and demo.

The public API is re-exported from the top-level package: ``from brokergate import open_session``.
Modules whose names start with ``_`` are internal and may change between releases.
"""
