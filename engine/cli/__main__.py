"""``python -m brokergate.engine.cli``: the ``brokergate`` command line."""

import sys

from brokergate.engine.cli import main

sys.exit(main())
