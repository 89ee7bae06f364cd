"""What the REPL's slash commands do, one module per feature.

The pattern, the same for every command: a command is one row in `repl.commands`' registry (name, argument,
help line) whose handler is a function here, ``handler(session, arg) -> None``. The function parses its argument
with the rules of `repl.values` (the command line's rules too), does the work through the library
(`textgen_core`) and the session's state, and hands what it shows to the session (`print`, `show`, `note`,
`error`); a user's mistake is a `TextgenError`, which the registry prints as one line.

- `settings`: the sampling and display settings (/temp, /len, /topk, /topp, /greedy, /seed, /color, /continue,
  /window, /follow, /reset)
- `steering`: continuing the last seed other ways and moving between branches (/compare, /beam, /fork, /tree, /go)
- `pick`: step mode, choosing each next character by key (/pick)
- `scoring`: how likely the model finds a text or its own output (/score, /alts)
- `cells`: looking inside the model (/cells, /cell, /color cell)
- `save`: the transcript to a file (/save)
- `model`: which model the session runs (/load, /info, the banner)
"""
