"""Train one checkpoint from its recipe, evaluate it and write it with its manifest entry: the training loop's
caller, its run folder, its provenance and publishing. The command line and what it means are in
:mod:`training.command` (``python -m training.train --help``).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from filelock import FileLock, Timeout

from training.arithmetic import CHOICE, recorded
from training.command import UsageError, check_arguments, command_line, departures, parse_args, resolved_config
from training.provenance import REPO_ROOT, cpu_record, git_commit, hardware
from training.publish import publish_run, update_manifest
from training.recipes import load_recipe, override_keys
from zoo.data import load_split
from zoo.engine.devices import resolve_device
from zoo.engine.distributed import from_environment
from zoo.engine.fit import EpochRecord, FitConfig, fit
from zoo.engine.train_state import clear_train_state, saved_epochs
from zoo.errors import ZooError
from zoo.evaluation.alignment import feedback_angles
from zoo.evaluation.evaluate import full_metrics, top1
from zoo.files import atomic_write_text
from zoo.registry import Family, get_family
from zoo.weights.checkpoint import load_into, save_checkpoint
from zoo.weights.integrity import sha256_file
from zoo.weights.manifest import Entry, pending_entry, published_entry
from zoo.weights.paths import manifest_path
from zoo.weights.run_folder import ENTRY_JSON, read_run_folder, write_run_entry

ALIGNMENT_BATCH = 1000  # first test images: the fixed batch of metrics.alignment_deg
RUN_FILES = ("run.json", "entry.json", "state.json")  # what makes a folder a run's (besides its checkpoints)
LOCK_FILE = "run.lock"
VALIDATION_SEED = 2021  # the draw of --val's held-out images, fixed so every run holds out the same ones
IN_PROGRESS_DIR = REPO_ROOT / "training" / "in_progress"
RUN_JSON = "run.json"


def init_entry(family: Family, init: str, arch: dict[str, Any]) -> Entry:
    """The published entry ``--init`` names, checked to be of the same learning rule and input shape as ``arch``."""
    import zoo
    from zoo.errors import UnknownModelError

    try:
        entry = zoo.get_weights(init).entry
    except UnknownModelError as exc:
        raise UsageError(f"--init {init}: {exc}") from None
    if not entry.published:
        raise UsageError(f"--init {init}: that checkpoint is pending (not trained yet), so there is nothing to start "
                         f"from; train it first with: {entry.recipe.get('command')}")
    if entry.learning_rule != family.learning_rule or entry.entrypoint != family.name:
        raise UsageError(f"--init {init} was trained by {entry.entrypoint} ({entry.learning_rule}); "
                         f"{family.name} continues only from its own checkpoints ({family.learning_rule})")
    if list(entry.arch["in_shape"]) != list(arch["in_shape"]):
        raise UsageError(f"--init {init} takes inputs of shape {entry.arch['in_shape']}, this run's dataset has "
                         f"{arch['in_shape']}; start from a checkpoint of the same input shape")
    return entry


def initial_model(family: Family, arch: dict[str, Any], init: str | None) -> torch.nn.Module:
    """An untrained model, or one holding a published checkpoint of the same rule (for fine-tuning)."""
    model = family.build_model(arch)
    if init is None:
        return model
    from zoo.weights.resolve import resolve_file

    return load_into(model, resolve_file(init_entry(family, init, arch)))


def write_run_output(out_dir: Path, family: Family, dataset: str, arch: dict[str, Any], recipe: dict[str, Any],
                     metrics: dict[str, Any], model: torch.nn.Module) -> Entry:
    """Write the checkpoint under its content-addressed name and ``entry.json`` (its future manifest entry)."""
    staged = save_checkpoint(model, out_dir / "model.safetensors.partial", entrypoint=family.name, arch=arch)
    sha = sha256_file(staged)
    entry = published_entry(family.name, dataset, family.learning_rule, arch, recipe, sha256=sha,
                            size_bytes=staged.stat().st_size, num_params=sum(p.numel() for p in model.parameters()),
                            metrics=metrics)
    os.replace(staged, out_dir / entry.filename)
    write_run_entry(out_dir, entry)
    return entry


def run_folder(args: argparse.Namespace, model_id: str, departed: list[str]) -> Path:
    """Where the run writes; a run that departs from its recipe must be given ``--out``, never the published
    checkpoints' folder."""
    if args.out is not None:
        published = (Path(args.manifest or manifest_path()).resolve().parent / "weights").resolve()
        out = Path(args.out).resolve()
        if out == published or published in out.parents:
            raise UsageError(f"--out {args.out} is the published checkpoints' folder {published}; a run writes into a "
                             "folder of its own (publish it afterwards with python -m training.publish)")
        return Path(args.out)
    if departed:
        raise UsageError(f"this run departs from its recipe ({', '.join(departed)}), so it must not replace the "
                         f"published checkpoint of {model_id}; pass --out DIR to write its checkpoint and manifest "
                         "entry there instead")
    return IN_PROGRESS_DIR / model_id


def run_device(spec: str) -> torch.device:
    """The training device; under torchrun with CUDA each process takes the GPU of its ``LOCAL_RANK``."""
    try:
        device = resolve_device(spec)
        if device.type == "cuda" and "LOCAL_RANK" in os.environ and spec in ("auto", "cuda"):
            device = resolve_device(f"cuda:{int(os.environ['LOCAL_RANK'])}")
    except ValueError as exc:
        raise UsageError(f"--device: {exc}") from None
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return device


def list_options(args: argparse.Namespace) -> None:
    """Print every ``--set`` key of the family on the dataset, with its value in the recipe (or its default)."""
    for key, value in override_keys(args.entrypoint, args.dataset, load_recipe(args.entrypoint, args.dataset,
                                                                                args.recipe)).items():
        print(f"{key}={json.dumps(value)}")


def train(args: argparse.Namespace) -> Entry | None:
    """Run the recipe and write the result; return the entry (``None`` on processes other than rank 0)."""
    check_arguments(args)
    family = get_family(args.entrypoint)
    config = resolved_config(args)
    arch = family.arch_for(args.dataset, **config["arch"])
    fit_config = FitConfig(**config["fit"])
    model_id = f"{family.name}.{args.dataset}"
    recipe: dict[str, Any] = {"command": command_line(args), "config": config, "seed": fit_config.seed,
                              "epochs": fit_config.epochs}
    if args.pending:
        entry = pending_entry(family.name, args.dataset, family.learning_rule, arch, recipe, args.pending)
        update_manifest(args.manifest or manifest_path(), entry, replace_published=args.replace_published)
        return entry

    departed = departures(args)
    out_dir = run_folder(args, model_id, departed)
    with run_lock(out_dir):
        return train_into(args, family, config, fit_config, recipe, out_dir, departed)


def train_into(args: argparse.Namespace, family: Family, config: dict[str, Any], fit_config: FitConfig,
               recipe: dict[str, Any], out_dir: Path, departed: list[str]) -> Entry | None:
    """The run of :func:`train` in ``out_dir`` (locked by this process)."""
    model_id = f"{family.name}.{args.dataset}"
    arch = family.arch_for(args.dataset, **config["arch"])
    publishing = args.out is None
    commit = git_commit()  # the code as it is when the run starts
    if publishing and "-dirty" in commit:
        raise UsageError("refusing to publish from a git tree with uncommitted changes (the recorded commit would "
                         "not reproduce the checkpoint); commit them first, or pass --out DIR for a private run")
    if config["init"] is not None:  # a clear error before any data is read; the start is recorded by its hash
        recipe["init_sha256"] = init_entry(family, config["init"], arch).sha256
    # only the process that writes checks the folder: under torchrun the others would race its run.json
    previous = check_run_folder(out_dir, args.resume) if writes_run_files() else saved_epochs(out_dir)
    torch.set_num_threads(args.threads)
    device = run_device(args.device)
    collective = from_environment(device)
    started = {"command": recipe["command"], "config": config, "git_commit": commit, "cpu": cpu_record(),
               "threads": torch.get_num_threads(), "device": device.type, "processes": collective.world,
               **{key: recipe[key] for key in ("init_sha256",) if key in recipe}}
    resumed_from: list[str] = []
    if args.resume and (out_dir / RUN_JSON).is_file():
        started, resumed_from = resumed_run(out_dir, started)
        commit = started["git_commit"]
        if previous is None:  # nothing saved yet: it starts again, from the start as published now
            started.update({key: recipe[key] for key in ("init_sha256",) if key in recipe})
        recipe.update({key: started[key] for key in ("init_sha256",) if key in started})
    out_dir.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(fit_config.seed)  # before anything random is built: weights, feedback matrices, Hebbian init
    model = initial_model(family, arch, config["init"]).to(device)
    train_x, train_y = load_split(args.dataset, "train", args.data_root)
    val_x = val_y = None
    if args.val is not None:
        train_x, train_y, val_x, val_y = hold_out(train_x, train_y, args.val)
    train_x, train_y = train_x[:args.limit], train_y[:args.limit]
    test_x, test_y = load_split(args.dataset, "test", args.data_root, limit=args.test_limit)
    log = collective.is_main

    def report(epoch: int, record: EpochRecord) -> None:
        if log:
            if val_x is not None and val_y is not None:
                record["val_top1"] = top1(model, val_x, val_y)
            record["test_top1"] = top1(model, test_x, test_y)
            val = f"  val top-1 {record['val_top1']:.2f}%" if "val_top1" in record else ""
            print(f"{model_id} epoch {epoch + 1}/{fit_config.epochs}  loss {record['train_loss']:.4f}{val}  "
                  f"test top-1 {record['test_top1']:.2f}%  ({record['wall_s']:.0f} s)", flush=True)

    if config["init"] is not None and log and previous is None:
        print(f"start ({config['init']}): test top-1 {top1(model, test_x, test_y):.2f}%", flush=True)
    if log:
        this_time = [{"git_commit": git_commit(), "cpu": cpu_record()}] if previous is not None and args.resume else []
        started["resumed_at"] = [*resumed_from, *this_time]
        atomic_write_text(out_dir / RUN_JSON, json.dumps(started, indent=1) + "\n")
    history = fit(model, train_x, train_y, fit_config, on_epoch_end=report,
                  progress=False if args.no_progress else None, state_dir=out_dir, resume=args.resume,
                  collective=collective)
    if not log:
        return None
    metrics = full_metrics(model, test_x, test_y, args.dataset)
    if family.alignment is not None:
        batch = test_x[:ALIGNMENT_BATCH].to(torch.float32).div_(255.0).to(device)
        metrics["alignment_deg"] = family.alignment(model, batch, test_y[:ALIGNMENT_BATCH].to(device))
    if angles := feedback_angles(model):  # feedback alignment's fixed B, Kolen-Pollack's learned B, against W
        metrics["feedback_angle_deg"] = angles
    wall = sum(record["wall_s"] for record in history)
    recipe.update({"wall_time_s": round(wall, 1), "hardware": hardware(device), "cpu": started["cpu"],
                   "torch_version": torch.__version__,
                   "git_commit": commit, "threads": torch.get_num_threads(), "device": device.type,
                   "processes": collective.world, "curve": history})
    if started["resumed_at"]:
        recipe["resumed_at"] = started["resumed_at"]
    if departed:
        recipe["departures"] = departed
    if args.val is not None:
        recipe["validation"] = {"n": args.val, "seed": VALIDATION_SEED, "top1": history[-1].get("val_top1")}
    entry = write_run_output(out_dir, family, args.dataset, arch, recipe, metrics, model.cpu())
    clear_train_state(out_dir)
    print(f"{entry.id}: top-1 {metrics['top1']:.2f}% -> {out_dir / entry.filename} ({wall:.0f} s)", flush=True)
    if publishing:
        entry = publish_run(out_dir, args.manifest or manifest_path(), args.data_root)
        shutil.rmtree(out_dir)  # its checkpoint and entry are in weights/ and the manifest now
        print(f"published {entry.id} -> {entry.file}", flush=True)
    return entry


def writes_run_files() -> bool:
    """Whether this process writes the run folder: the only one, or rank 0 under torchrun."""
    return os.environ.get("RANK", "0") == "0"


@contextlib.contextmanager
def run_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir``'s lock for the whole run: a second process training into the same folder is refused.
    Under torchrun only rank 0 (the process that writes) locks; a folder this call created is removed again if the
    run leaves nothing in it."""
    if not writes_run_files():
        yield
        return
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out_dir / LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise UsageError(f"{out_dir} is in use by another training process; wait for it to end or choose another "
                         "--out") from None
    try:
        yield
    finally:
        (out_dir / LOCK_FILE).unlink(missing_ok=True)  # while still held: a waiting process cannot lock the old file
        lock.release()
        if created and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()


def hold_out(images: torch.Tensor, labels: torch.Tensor, n: int) -> tuple[torch.Tensor, ...]:
    """``(train_x, train_y, val_x, val_y)``: ``n`` training images drawn with :data:`VALIDATION_SEED` (the same
    ones in every run, whatever its own seed) held out as the validation split; the rest keep their order."""
    if n >= len(images):
        raise UsageError(f"--val {n} holds out every one of the {len(images)} training images; give fewer")
    chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(VALIDATION_SEED))[:n]
    keep = torch.ones(len(images), dtype=torch.bool)
    keep[chosen] = False
    chosen = chosen.sort().values
    return images[keep], labels[keep], images[chosen], labels[chosen]


def check_run_folder(out_dir: Path, resume: bool) -> int | None:
    """The epochs of the saved state ``--resume`` continues (``None``: start afresh), after refusing a folder that
    holds another run: a finished one (its entry.json), or a started one without ``--resume``."""
    entry_file = out_dir / ENTRY_JSON
    if entry_file.is_file():
        finished = json.loads(entry_file.read_text())
        what = f"finished run of {finished.get('id')} (its checkpoint {Path(str(finished.get('file'))).name})"
        if resume:
            raise UsageError(f"--resume: {out_dir} holds a {what}: there is nothing left to train")
        raise UsageError(f"{out_dir} holds a {what}; choose another --out (or delete that folder)")
    previous = saved_epochs(out_dir)
    if resume and previous is not None and not (out_dir / RUN_JSON).is_file():
        raise UsageError(f"--resume: {out_dir} holds a saved state but no {RUN_JSON}, so which command it continues is "
                         "unknown; delete the folder's state files to start again")
    if not resume and (previous is not None or (out_dir / RUN_JSON).is_file()):
        after = f" after epoch {previous}" if previous is not None else ""
        raise UsageError(f"{out_dir} holds the saved state of a run{after}; pass --resume to continue it, or choose "
                         "another --out (or delete that folder) to start again")
    return previous


def resumed_run(out_dir: Path, now: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The ``run.json`` of the run ``--resume`` continues, and the commits it was resumed at so far.

    Only the run that saved the state continues: same command and resolved recipe, same thread count, device and
    process count (another would change the arithmetic, so the bytes would not be those of the recorded command).
    The run keeps the commit, CPU and (for a fine-tune) starting checkpoint it started with, though the start may have
    been published anew since; the code and CPU of each resumption are recorded beside them
    (a resumed run gives the uninterrupted run's bytes only with the same code on the same kind of CPU).
    """
    try:
        saved = json.loads((out_dir / RUN_JSON).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"--resume: cannot read {out_dir / RUN_JSON} ({exc}); delete the folder to start again") \
            from None
    if not isinstance(saved, dict) or not {"command", "config"} <= set(saved):
        raise UsageError(f"--resume: {out_dir / RUN_JSON} is not a run record (it needs 'command' and 'config'); "
                         "delete the folder to start again")
    if saved["command"] != now["command"] or saved["config"] != now["config"]:
        raise UsageError(f"--resume: {out_dir} holds the state of another run ({saved['command']}); "
                         f"resume it with that command, or choose another --out")
    for key, flag in (("threads", "--threads"), ("device", "--device"), ("processes", "the process count")):
        if key in saved and saved[key] != now[key]:
            raise UsageError(f"--resume: {out_dir} was started with {key} {saved[key]}, this process has "
                             f"{now[key]}; resume it with the same {flag} (it changes the arithmetic, so the "
                             "checkpoint would not be the recorded command's)")
    before, after = recorded(saved.get("cpu")), now["cpu"]["arithmetic"]
    if before != after:
        raise UsageError(f"--resume: {out_dir} was started with the {before} arithmetic, this process has {after}; "
                         f"resume it with {CHOICE}={before} (the arithmetic changes the bytes)")
    started = {**now, **{key: saved[key] for key in ("git_commit", "cpu", "init_sha256") if key in saved}}
    return started, list(saved.get("resumed_at", []))


def run_to_end(arguments: Sequence[str], out_dir: Path) -> Entry:
    """The finished run of ``python -m training.train ARGUMENTS`` (whose ``--out`` is ``out_dir``): read from the
    folder when it holds it, else trained there, continuing (``--resume``) the run a stopped process left. Raises
    ``RuntimeError`` when the run fails (its error is printed above)."""
    if not (out_dir / ENTRY_JSON).is_file():
        started = (out_dir / RUN_JSON).is_file() or saved_epochs(out_dir) is not None
        if main([*arguments, *(["--resume"] if started else [])]) != 0:
            raise RuntimeError(f"the run into {out_dir} failed; see above (the same command resumes it)")
    finished = read_run_folder(out_dir)
    wanted = command_line(parse_args(list(arguments)))
    if finished.recipe.get("command") != wanted:
        raise RuntimeError(f"{out_dir} holds a finished run of another command ({finished.recipe.get('command')}), "
                           f"not {wanted}; choose another folder (or delete that one)")
    return finished


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; a refused command line or a failed run prints one ``error:`` line (the traceback
    with ``--debug``) and returns 2."""
    args = parse_args(argv)
    threads = torch.get_num_threads()  # restored afterwards: a caller's process keeps its own setting
    try:
        if args.list_options:
            list_options(args)
        else:
            train(args)
    except (ZooError, ValueError, OSError) as exc:  # UsageError and PublishError are ValueErrors
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
