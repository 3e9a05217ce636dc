"""``python -m hpcsys``: the same command line as the ``hpcsys`` script."""

import sys

from hpcsys.cli import main

sys.exit(main())
