"""``python -m hpcsys``: the same command line as the ``hpcsys`` script."""

import sys

from hpcsys.cli import main

if __name__ == "__main__":
    sys.exit(main())
