"""``python -m brokergate``: the same command line as the ``brokergate`` script."""

import sys

from brokergate.engine.cli import main

sys.exit(main())
