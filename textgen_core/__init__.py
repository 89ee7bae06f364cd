"""textgen_core: the library behind textgen (corpus, vocabulary, model, training, sampling, checkpoints).

Importing this package never imports torch: generation runs on numpy so that the REPL starts fast.
Torch is imported only by the modules that train (`model`, `train`).
"""

__version__ = "0.1.0"
