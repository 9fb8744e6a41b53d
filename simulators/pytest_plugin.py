"""pytest fixtures that start brokergate's broker simulators on loopback (work in progress)."""
