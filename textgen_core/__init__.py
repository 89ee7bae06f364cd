"""textgen_core: the library behind textgen (corpus, vocabulary, checkpoints, sampling, training).

Importing this package never imports torch: generation runs on numpy so that the REPL starts fast and installs
without torch. Only the modules inside `textgen_core.training` import torch, and only those that train.
"""

__version__ = "0.1.0"
