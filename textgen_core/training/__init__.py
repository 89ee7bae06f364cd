"""Training: the only part of textgen that needs torch (`pip install 'textgen[train]'`).

The package re-exports nothing: import a name from the module that defines it (``from
textgen_core.training.loop import Trainer``), so that importing one torch-free module (`config`, `events`,
`finetune`, `sizing`) never pays for torch, and no list of names has to be kept in step with the modules.

The modules, one job each:

- `config`: TrainConfig, each setting declared once with its `textgen train` flag, and how a resumed run
  combines its settings with the command's;
- `hardware`: device, precision, threads and memory;
- `distributed`: torchrun, the world of processes and what they agree on;
- `batching`: the corpus as parallel streams, and their batches;
- `schedule`: the budget and the learning rate along it;
- `model`: the torch CharLSTM;
- `step`: one forward and backward pass under autocast;
- `averaging`: the moving average of the weights (--ema);
- `evaluation`: validation bits per character and the samples of an evaluation;
- `sizing` and `calibrate`: --size auto's rule (no torch) and the timing of candidate sizes;
- `finetune`: starting from a checkpoint (--init);
- `prepare`: setting a run up (its settings, its text as the model numbers it, its size, its model);
- `saving`: the training state to and from the resume file;
- `events`: what a run reports to a front end;
- `loop`: the Trainer: the run's state, and the steps, evaluations and saves that move it on.

The run folder's layout, the reading of its resume file and its metrics log are `textgen_core.runfolder`'s,
outside this package: `textgen info` reads a run's progress through it without torch.
"""
