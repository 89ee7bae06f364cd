"""Training: the only part of textgen that needs torch (`pip install 'textgen[train]'`).

The package re-exports nothing: import a name from the module that defines it (``from
textgen_core.training.loop import Trainer``), so that importing one torch-free module (`config`, `events`,
`finetune`, `sizing`) never pays for torch, and no list of names has to be kept in step with the modules.

The modules, one job each:

- `config`: TrainConfig and how a resumed run combines its settings with the command's;
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
- `events`: what a run reports to a front end;
- `loop`: the Trainer.

The run folder's files (resume state, metrics log) are read and written by `textgen_core.runfolder`, outside this
package: `textgen info` reads them without torch.
"""
