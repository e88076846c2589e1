"""``python -m sycam``: the command line (see :mod:`sycam.cli`)."""

import sys

from .cli import main

sys.exit(main())
