"""One module per command: its request, its result and the function that runs it (the CLI and the Python API call
these).
"""
