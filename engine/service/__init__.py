"""The ``brokergate run`` service: many broker sessions held all day from one file."""
