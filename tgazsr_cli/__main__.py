"""`python -m tgazsr_cli` runs the command-line interface."""

import sys

from tgazsr_cli.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
