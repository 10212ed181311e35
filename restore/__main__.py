"""``python -m restore``: the ``restore`` command (see :mod:`restore.cli`)."""

import sys

from restore.cli import main

sys.exit(main())
