"""`python -m tgazsr_cli` runs the command-line interface."""

from tgazsr_cli.cli.app import run

if __name__ == "__main__":
    run()
