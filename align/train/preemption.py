"""Preemption and time limits survived: a signal during training saves a checkpoint at the next step end.

A scheduler warns a job before it ends it (Slurm: `--signal=USR1@LEAD`, SIGTERM at the time limit or on
preemption). Without this, SIGTERM ends the run at once (align.plumbing.interrupt) and every step since the last
`save_steps` is trained again after the restart. With it, SIGTERM or SIGUSR1 during training only raises a
flag; at the end of the step in flight every process agrees on it (one all-reduce, so no process stops a
step before the others), the Trainer writes checkpoint-N there and stops. On SIGUSR1 the command exits with
PREEMPTED_EXIT: "not done, resume me"; on SIGTERM it then ends as Ctrl-C does (one line, exit 130, the promise
of align.plumbing.interrupt). Either way `--resume_from_checkpoint true` continues at step N + 1.
"""

from __future__ import annotations

import logging
import signal
import threading

from transformers import TrainerCallback

from align.plumbing.interrupt import PREEMPTED_EXIT

log = logging.getLogger("align")
__all__ = ["PREEMPTED_EXIT", "CheckpointOnSignal", "watch_for_preemption"]
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class CheckpointOnSignal(TrainerCallback):
    """While training: SIGTERM / SIGUSR1 -> checkpoint and stop at the end of the current step."""

    def __init__(self):
        self.requested: int | None = None  # the signal that arrived
        self.stopped_at: int | None = None  # the step whose checkpoint was written on it
        self._previous: dict[int, object] = {}

    def _on_signal(self, signum, frame):
        if self.requested is None:
            print(f"align: got {signal.Signals(signum).name}: checkpoint at the end of this step, then stop",
                  flush=True)
        self.requested = signum

    def on_train_begin(self, args, state, control, **kwargs):
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._on_signal) for sig in SIGNALS}

    def on_step_end(self, args, state, control, **kwargs):
        if self._agreed_request(args) and state.global_step < state.max_steps:  # the last step just finishes
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step

    def on_train_end(self, args, state, control, **kwargs):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _agreed_request(self, args) -> bool:
        """Whether any process got the signal: all stop at the same step (or a collective would hang)."""
        if args.world_size <= 1:
            return self.requested is not None
        import torch
        import torch.distributed as dist

        flag = torch.tensor([0 if self.requested is None else 1], device=args.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())


def watch_for_preemption(trainer) -> CheckpointOnSignal:
    """Add the callback to `trainer`; after `train()`, its `stopped_at` says whether the run was stopped."""
    callback = CheckpointOnSignal()
    trainer.add_callback(callback)
    return callback
