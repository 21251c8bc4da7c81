"""Running ``jepa pretrain``: parse the config, fit, report where the run went."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import warnings
from collections.abc import Iterator

from ..data.workers import DataWorkerDied
from ..errors import JEPAError
from ..runlock import folders_released_after
from ..stopping import RunAborted, exit_code, stop_signals
from .checkpointing import CheckpointWriteError
from .config_errors import config_error_line
from .graceful_stop import continue_command, stop_of
from .lightning_cli import PretrainCLI
from .run_report import write_report
from .summary import failure_status

_LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Holds back Lightning's start-up chatter so that a configuration error is the only line printed."""
    loggers = [logging.getLogger(name) for name in _LIGHTNING_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter.*")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*deprecated.*")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def build_cli(args: list[str]) -> PretrainCLI:
    """Parses ``args`` and instantiates model, data and trainer; config problems raise JEPAError."""
    try:
        with quiet_lightning():
            return PretrainCLI(args=args)
    except (JEPAError, SystemExit, KeyboardInterrupt, RunAborted):
        raise
    except Exception as exn:
        raise JEPAError(config_error_line(str(exn))) from None


def pretrain(args: list[str]) -> int:
    if not args:
        raise JEPAError("jepa pretrain needs a config: jepa pretrain --config configs/quickstart.yaml (--help lists the keys)")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # From here on a stop signal is a request: one that comes while the run is being set up stops
    # it at the first step boundary (see jepa.stopping).
    with stop_signals(), folders_released_after():
        try:
            return _fit(args)
        except RunAborted:
            close_process_group(wait=False)
            return exit_code(signal.SIGINT)


def _fit(args: list[str]) -> int:
    cli = build_cli(args)
    run_dir = str(cli.config_init["run_dir"])
    trainer = cli.trainer
    # The EMA target encoder is in eval mode on purpose (no dropout, no drop-path).
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
    try:
        trainer.fit(cli.model, cli.datamodule, ckpt_path=cli.resume_from, weights_only=True)
    except (DataWorkerDied, CheckpointWriteError) as exn:
        # The run cannot go on; say why, what was kept and how to continue, in one line.
        close_process_group(wait=False)
        if trainer.is_global_zero:
            status = failure_status(trainer, exn, run_dir)
            print(f"error: {status}; continue with: {continue_command(cli.jepa_argv)}", file=sys.stderr, flush=True)
        return 1
    except RunAborted as exn:
        close_process_group(wait=False)
        if trainer.is_global_zero:
            print(f"{failure_status(trainer, exn, run_dir)}; continue with: {continue_command(cli.jepa_argv)}",
                  file=sys.stderr, flush=True)
        return exit_code(signal.SIGINT)
    close_process_group()
    stop = stop_of(trainer)
    if trainer.is_global_zero:
        print_outcome(cli, run_dir)
        if cli.config_init["report"]:
            write_run_report(run_dir)
        if stop is not None:
            requeued = "; the job was requeued" if stop.requeued else ""
            print(f"{stop.status()}: {run_dir}/checkpoints/last.ckpt holds that step{requeued}; continue with: "
                  f"{continue_command(cli.jepa_argv)}", file=sys.stderr, flush=True)
    return 0 if stop is None else stop.exit_code


def close_process_group(wait: bool = True) -> None:
    """Waits for every rank, then tears the process group down before the interpreter exits.

    Left to interpreter shutdown, a rank whose peer has already exited can abort in gloo's
    destructors ("terminate called without an active exception") and exit with SIGABRT after a
    run that finished correctly.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def write_run_report(run_dir: str) -> None:
    """``report.png`` at the end of a run; a picture that cannot be drawn costs a warning, not the run."""
    try:
        _, drawn = write_report([run_dir])
    except Exception as exn:  # the run itself is complete and saved
        drawn = str(exn).splitlines()[0] if str(exn) else type(exn).__name__
    if isinstance(drawn, str):
        print(f"warning: report.png not written: {drawn}", file=sys.stderr, flush=True)
        return
    print(f"curves written to {drawn} (jepa report {run_dir} prints the summary again)", flush=True)


def print_outcome(cli: PretrainCLI, run_dir: str) -> None:
    probe = next((cb.summary() for cb in cli.trainer.callbacks if hasattr(cb, "history")), {})
    lines = [f"run written to {run_dir} (config.yaml, checkpoints/last.ckpt, metrics.csv, summary.json)"]
    for logger in cli.trainer.loggers[1:]:  # the user's, beside metrics.csv
        lines.append(f"{type(logger).__name__} wrote to {logger.log_dir or logger.save_dir}")
    if "final_linear_acc" in probe:
        step0 = probe.get("step0_linear_acc")
        start = f"{100 * step0:.1f}% at step 0 (random weights)" if step0 is not None else "step 0 not measured"
        lines.append(
            f"linear-probe accuracy on held-out data: {start} -> {100 * probe['final_linear_acc']:.1f}% "
            f"at step {probe['final_step']}"
        )
        rank0 = probe.get("step0_rankme")
        lines.append(f"held-out RankMe: {f'{rank0:.1f} at step 0 -> ' if rank0 is not None else ''}"
                     f"{probe['final_rankme']:.1f} of {probe['rankme_max']} at step {probe['final_step']}")
    else:
        lines.append(f"probe evaluation skipped: {probe.get('skipped', 'no probe')}")
    print("\n".join(lines), file=sys.stdout, flush=True)
