"""Command line: ``python -m zoo list | info ID | download ID | eval ID | verify | export-hf ID DIR | push ID
| export-nir ID FILE | export-onnx ID FILE | show-filters ID | curves ID... | robustness ID... | explain ID...
| compare ID...``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

from zoo.errors import ZooError


def _cmd_list(args: argparse.Namespace) -> int:
    from zoo.api import manifest
    from zoo.registry import families

    print(f"{'id':28s} {'rule':32s} {'status':10s} {'top-1':>7s}")
    entries = manifest().entries.values()
    for entry in entries:
        if entry.published or args.all:
            top1 = f"{entry.metrics['top1']:.2f}" if entry.published else "-"
            print(f"{entry.id:28s} {entry.learning_rule:32s} {entry.status:10s} {top1:>7s}")
    if args.all:  # families without a checkpoint in the manifest: those of installed plugins
        with_entries = {entry.entrypoint for entry in entries}
        for name, family in families().items():
            if name not in with_entries:
                origin = f"  {family.plugin}" if family.plugin else ""
                print(f"{name:28s} {family.learning_rule:32s} {'no weights':10s} {'-':>7s}{origin}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from zoo.api import get_entry

    entry = get_entry(args.id)
    meta = entry.to_dict()
    from zoo.evaluation.alignment import ANGLE_METRICS

    print(json.dumps(meta, indent=2))
    for key, title in ANGLE_METRICS.items():
        if angles := entry.metrics.get(key):
            print(f"\n{title}:")
            for layer, angle in angles.items():
                print(f"  {layer:20s} {angle:6.1f}")
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from zoo.api import get_entry
    from zoo.weights.resolve import download_to_cache

    print(download_to_cache(get_entry(args.id), args.source))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from zoo.api import get_entry, load
    from zoo.data import load_split
    from zoo.evaluation.evaluate import top1

    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be a positive number of images, got {args.limit}")
    entry = get_entry(args.id)
    model = load(args.id, source=args.source)
    images, labels = load_split(entry.dataset, args.split, args.data_root, limit=args.limit, download=args.download)
    accuracy = top1(model, images, labels)
    reference = (f" (manifest: {entry.metrics['top1']:.2f}% on {entry.metrics['n_eval']})"
                 if args.split == "test" else "")
    print(f"{args.id}: top-1 {accuracy:.2f}% on {len(labels)} {entry.dataset} {args.split} images{reference}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from zoo.api import get_entry, manifest
    from zoo.weights.resolve import raise_if_pending
    from zoo.weights.verify import verify_entry, verify_robustness

    if args.ids:
        entries = [get_entry(model_id) for model_id in args.ids]  # unknown ids: an error with close matches
        for entry in entries:
            raise_if_pending(entry)
    else:
        entries = [e for e in manifest().entries.values() if e.published]
    failures = missing = 0
    for entry in entries:
        checks = verify_entry(entry, args.data_root)
        if args.robustness:
            checks += verify_robustness(entry, args.data_root)
        for check in checks:
            print(check, flush=True)
            missing += check.missing_data
            failures += not check.ok and not check.missing_data
    pending = sum(not e.published for e in manifest().entries.values())
    print(f"verify: {len(entries)} published checkpoints checked, {failures} mismatches, {missing} top-1 not "
          f"checked (dataset missing), {pending} pending entries")
    if missing and not args.allow_missing_data:
        print("verify: datasets are missing (see 'not checked' above): pass --data-root DIR or set ZOO_DATA_ROOT, "
              "or --allow-missing-data to accept that", file=sys.stderr)
    return 1 if failures or (missing and not args.allow_missing_data) else 0


def _cmd_export_hf(args: argparse.Namespace) -> int:
    from zoo.weights.hub_layout import export_folder

    print(export_folder(args.id, args.dir, force=args.force))
    return 0


def _refuse_to_overwrite(path: Path, force: bool) -> None:
    """An existing ``path`` is replaced only with ``--force``."""
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to replace it")


def _cmd_export_nir(args: argparse.Namespace) -> int:
    from zoo.api import get_entry, load
    from zoo.rules.spiking import export_nir, require_nir

    get_entry(args.id)  # an unknown id: close matches, before anything else
    _refuse_to_overwrite(args.file, args.force)
    require_nir()  # before the checkpoint is fetched
    print(export_nir(load(args.id, source=args.source), args.file))
    return 0


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    from zoo.api import get_entry, load
    from zoo.weights.onnx_export import export_onnx, require_onnx

    get_entry(args.id)
    _refuse_to_overwrite(args.file, args.force)
    require_onnx()  # before the checkpoint is fetched
    print(export_onnx(load(args.id, source=args.source), args.file))
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    import tempfile

    from zoo.api import get_entry
    from zoo.weights.hf_hub import push_folder
    from zoo.weights.hub_layout import export_folder

    entry = get_entry(args.id)
    with tempfile.TemporaryDirectory() as tmp:
        folder = export_folder(args.id, Path(tmp))
        print(push_folder(folder, args.repo_id or entry.hf["repo_id"], token=args.token))
    return 0


def _cmd_show_filters(args: argparse.Namespace) -> int:
    from zoo.api import load
    from zoo.evaluation.extras import require
    from zoo.evaluation.filters import save_filters

    require("drawing filters", "matplotlib")  # before the checkpoint is fetched
    print(save_filters(load(args.id, source=args.source), args.out, n=args.n, cols=args.cols, title=args.id))
    return 0


def _cmd_curves(args: argparse.Namespace) -> int:
    from zoo.api import get_entry
    from zoo.evaluation.curves import save_curves

    print(save_curves([get_entry(i) for i in args.ids], args.out))
    return 0


def _cmd_robustness(args: argparse.Namespace) -> int:
    from zoo.api import get_entry
    from zoo.evaluation.robustness_plots import write_robustness_curves

    for path in write_robustness_curves([get_entry(i) for i in args.ids], args.out):
        print(path)
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from zoo.evaluation.attributions import explain_models

    for path in explain_models(args.ids, args.out, args.method, args.images, args.data_root).values():
        print(path)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from zoo.evaluation.representations import compare_checkpoints

    for path in compare_checkpoints(args.ids, args.out, args.layer, args.images, args.data_root).values():
        print(path)
    return 0


def _cmd_check_rule(args: argparse.Namespace) -> int:
    from zoo.contract import check_family

    results = check_family(args.family, args.dataset)
    print(f"{args.family}: the zoo's contract on random images of {args.dataset or 'its first dataset'}'s shape")
    for result in results:
        print(f"  {'ok  ' if result.passed else 'FAIL'}  {result.name}: {result.detail}")
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} of {len(results)} checks passed")
    return 1 if failed else 0


def _cmd_new_rule(args: argparse.Namespace) -> int:
    from zoo.rule_template import write_rule_package

    for path in write_rule_package(args.name, args.folder):
        print(path)
    return 0


def _cmd_benchmark(args: argparse.Namespace) -> int:
    """``python -m training.benchmark`` in a fresh interpreter with this one's import path: the engine sets its
    arithmetic before torch starts (``training.arithmetic``), which this process has already started."""
    import importlib.util
    import os
    import subprocess

    if importlib.util.find_spec("training") is None:
        raise ZooError("zoo benchmark trains with the repository's training code (training/): run it from a checkout "
                       "of bioplausible-zoo, with your plugin installed")
    arguments = args.arguments[1:] if args.arguments[:1] == ["--"] else args.arguments
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
    return subprocess.run([sys.executable, "-m", "training.benchmark", *arguments], env=env).returncode


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m zoo`` argument parser."""
    from zoo.evaluation.attributions import MAX_IMAGES
    from zoo.weights.resolve import SOURCES

    parser = argparse.ArgumentParser(prog="python -m zoo", description="bioplausible-zoo: pretrained checkpoints "
                                     "of biologically plausible learning rules")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="list checkpoints")
    p.add_argument("--all", action="store_true", help="include pending checkpoints and the families with no "
                                                      "checkpoint (those of installed plugins, with their plugin)")
    p.set_defaults(run=_cmd_list)
    p = sub.add_parser("benchmark", add_help=False,
                       help="train a family (a plugin's too) under the zoo's protocol and report it beside the "
                            "published checkpoints (python -m training.benchmark; --help there)")
    p.add_argument("arguments", nargs=argparse.REMAINDER)
    p.set_defaults(run=_cmd_benchmark)
    p = sub.add_parser("check-rule", help="run the zoo's contract on a family (a plugin's too): build, one training "
                                          "step, checkpoint round trip, resume, determinism; exit status 1 on failure")
    p.add_argument("family")
    p.add_argument("--dataset", help="whose input shape to use (default: the family's first dataset)")
    p.set_defaults(run=_cmd_check_rule)
    p = sub.add_parser("new-rule", help="write a plugin package to start a learning rule from (rule module, recipe, "
                                        "contract test, pyproject.toml with the entry point)")
    p.add_argument("name", help="the rule's name, lowercase letters and digits (prefixes its family names)")
    p.add_argument("folder", type=Path, help="a new or empty folder")
    p.set_defaults(run=_cmd_new_rule)
    p = sub.add_parser("info", help="show a checkpoint's manifest entry")
    p.add_argument("id")
    p.set_defaults(run=_cmd_info)
    p = sub.add_parser("download", help="put a checkpoint into the torch hub cache ($TORCH_HOME/hub/checkpoints), "
                                        "fetched from --source (a checkout's copy is copied), and print its path")
    p.add_argument("id")
    p.add_argument("--source", choices=SOURCES, default="auto")
    p.set_defaults(run=_cmd_download)
    p = sub.add_parser("eval", help="top-1 accuracy of a checkpoint on its dataset")
    p.add_argument("id")
    p.add_argument("--data-root", type=Path, help="dataset folder in torchvision's layout, used as given (default: "
                                                  "$ZOO_DATA_ROOT or the user cache, where the bundled MNIST test "
                                                  "split stands in for missing files)")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--limit", type=int, help="first N images only")
    p.add_argument("--download", action="store_true", help="fetch missing dataset files from the official mirrors")
    p.add_argument("--source", choices=SOURCES, default="auto")
    p.set_defaults(run=_cmd_eval)
    p = sub.add_parser("verify", help="recompute hashes, sizes, parameter counts and accuracies")
    p.add_argument("ids", nargs="*", help="only these ids (default: every published checkpoint)")
    p.add_argument("--data-root", type=Path)
    p.add_argument("--allow-missing-data", action="store_true",
                   help="succeed when a dataset is missing (its top-1 figures are reported as not checked)")
    p.add_argument("--robustness", action="store_true",
                   help="also recompute the attack comparison (metrics.robustness; needs the analysis extra: "
                        "minutes per checkpoint, so name ids)")
    p.set_defaults(run=_cmd_verify)
    p = sub.add_parser("export-hf", help="write a Hugging Face Hub folder (config.json, model.safetensors, README.md)")
    p.add_argument("id")
    p.add_argument("dir", type=Path)
    p.add_argument("--force", action="store_true", help="replace those three files in a non-empty folder")
    p.set_defaults(run=_cmd_export_hf)
    for name, about, command in (
            ("export-nir", "write a spiking checkpoint as a NIR graph (HDF5) with snnTorch's exporter, for other "
                           "simulators and neuromorphic hardware (needs the snn extra)", _cmd_export_nir),
            ("export-onnx", "write a checkpoint's inference pass as ONNX (input 'images' float [N, C, H, W] in "
                            "[0, 1], output 'logits'; needs the onnx extra)", _cmd_export_onnx)):
        p = sub.add_parser(name, help=about)
        p.add_argument("id")
        p.add_argument("file", type=Path)
        p.add_argument("--force", action="store_true", help="replace an existing FILE")
        p.add_argument("--source", choices=SOURCES, default="auto")
        p.set_defaults(run=command)
    p = sub.add_parser("push", help="export a checkpoint and upload it to the Hugging Face Hub")
    p.add_argument("id")
    p.add_argument("--repo-id", help="default: the manifest's hf.repo_id")
    p.add_argument("--token", help="default: the token huggingface_hub finds (HF_TOKEN or login)")
    p.set_defaults(run=_cmd_push)
    p = sub.add_parser("show-filters", help="draw the receptive fields of the first layer (fully connected or conv) "
                       "(needs matplotlib)")
    p.add_argument("id")
    p.add_argument("--out", type=Path, default=Path("filters.png"), help="image file (default: filters.png)")
    p.add_argument("--n", type=int, default=100, help="number of units to draw (default: 100)")
    p.add_argument("--cols", type=int, help="units per row (default: a square grid)")
    p.add_argument("--source", choices=SOURCES, default="auto")
    p.set_defaults(run=_cmd_show_filters)
    p = sub.add_parser("curves", help="plot the learning curves recorded by training runs (needs matplotlib)")
    p.add_argument("ids", nargs="+")
    p.add_argument("--out", type=Path, default=Path("curves.png"), help="image file (default: curves.png)")
    p.set_defaults(run=_cmd_curves)
    p = sub.add_parser("robustness", help="accuracy vs noise σ and attack ε of checkpoints of one dataset, from "
                                          "the manifest: JSON + PNG (needs matplotlib)")
    p.add_argument("ids", nargs="+")
    p.add_argument("--out", type=Path, default=Path("robustness"), help="folder (default: robustness)")
    p.set_defaults(run=_cmd_robustness)
    p = sub.add_parser("explain", help="attribution maps (captum) of checkpoints of one dataset on the same test "
                                       "images: JSON + safetensors + PNG (needs the analysis extra)")
    p.add_argument("ids", nargs="+")
    p.add_argument("--out", type=Path, required=True, help="folder for attributions.{json,safetensors,png}")
    p.add_argument("--method", choices=("saliency", "integrated_gradients"), default="saliency")
    p.add_argument("--images", type=int, default=8,
                   help=f"the first N test images, one picture column each (default: 8, at most {MAX_IMAGES})")
    p.add_argument("--data-root", type=Path)
    p.set_defaults(run=_cmd_explain)
    p = sub.add_parser("compare", help="representations of checkpoints of one dataset and an untrained model of "
                                       "each architecture on the same test images: per-layer RDMs, linear CKA, "
                                       "t-SNE; JSON + PNG (needs the analysis extra)")
    p.add_argument("ids", nargs="+")
    p.add_argument("--out", type=Path, default=Path("compare"), help="folder (default: compare)")
    p.add_argument("--layer", help="the t-SNE layer, a model.named_modules() name or 'output' (default: each "
                                   "model's last hidden layer)")
    p.add_argument("--images", type=int, default=500, help="the first N test images (default: 500)")
    p.add_argument("--data-root", type=Path)
    p.set_defaults(run=_cmd_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; every error prints ``error: ...`` (its traceback only with ``--debug``) and exits
    with status 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["benchmark"]:  # every argument, --help too, belongs to training.benchmark
        argv = ["benchmark", "--", *argv[1:]]
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except Exception as exc:  # noqa: BLE001 - the command line reports every failure the same way
        if args.debug:
            raise
        text = str(exc) if isinstance(exc, (ZooError, OSError, ValueError)) else f"{type(exc).__name__}: {exc}"
        print(f"error: {text}", file=sys.stderr)
        return 2
