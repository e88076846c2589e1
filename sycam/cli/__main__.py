"""``python -m sycam.cli``: the command line (see :mod:`sycam.cli`)."""

import sys

from . import main

sys.exit(main())
