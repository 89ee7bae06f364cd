"""textgen's terminal front end: the `textgen` command line and the interactive REPL.

All model maths lives in `textgen_core`; this package parses arguments, renders and talks to the terminal.
"""
