"""The command line: Typer + Rich only. Commands parse, resolve settings and call one engine function."""
