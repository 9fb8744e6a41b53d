"""brokergate's reliability and security suite: faults injected by a loopback proxy, seeded
property runs per broker, decoder fuzzing and hostile servers, with the figures in one table.

``python3 tasks.py reliability`` runs the long version; the test suite runs the same code with
fewer seeds (tests/test_reliability.py, tests/test_fuzz.py).
"""
