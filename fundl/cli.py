"""The ``fundl`` command: ``fundl --help``, ``--version``, ``demo``, ``zoo``, ``train``,
``playground``, ``bench``.

``fundl train`` lives in :mod:`fundl._cli_train`, ``fundl playground`` (the browser
playground) in :mod:`fundl._cli_playground`.
"""
from __future__ import annotations

import argparse
import sys


class _UserError(Exception):
    """A failure the user can fix (bad data file, unreadable model): one message, exit 1."""


def _announce_compilation(modules):
    """Say that kernels compile once, when Numba's cache lacks any of ``modules`` and they
    compile in this process (``FUNDL_COMPILE=foreground``); by default a background process
    compiles them, and :mod:`fundl.kernels._jit` says so itself when it starts."""
    from .kernels._jit import cached_kernel_modules, compile_policy, numba

    if numba is not None and compile_policy() == "foreground" and \
            not set(modules) <= cached_kernel_modules():
        print("fundl: compiling CPU kernels, once (about 20 s; later runs load them from "
              "Numba's cache).", flush=True)


def _load_demo_data():
    """MNIST when a copy can be found (or downloaded), else a synthetic spiral, saying which.

    A copy that exists but is damaged (wrong checksum, unreadable) is the user's to fix: it
    raises :class:`_UserError` with the library's whole message rather than training on
    something else.
    """
    import os

    import numpy as np

    from .datasets import mnist, synthetic
    from .datasets._files import DATA_DIR_ENV, ChecksumError, DatasetNotFoundError

    try:
        (x_train, y_train), (x_test, y_test) = mnist.load_data()
    except DatasetNotFoundError as e:
        print(f"MNIST is not available:\n{e}")
        hint = ("" if os.environ.get(DATA_DIR_ENV) else
                f" Set {DATA_DIR_ENV} to a folder holding mnist/ to train on MNIST.")
        print(f"Training on a synthetic 3-arm spiral instead.{hint}")
        x, y = synthetic.spiral(3000, noise=0.02, seed=0, classes=3)
        return (x[:2400], y[:2400]), (x[2400:], y[2400:]), "spiral"
    except (ChecksumError, OSError, ValueError) as e:
        raise _UserError(f"cannot load MNIST:\n{e}") from e
    x_train = x_train.reshape(-1, 784).astype(np.float32) / 255
    x_test = x_test.reshape(-1, 784).astype(np.float32) / 255
    return (x_train, y_train.astype(np.int64)), (x_test, y_test.astype(np.int64)), "MNIST"


def _demo(args) -> int:
    """Train a network end to end on the best data available and report test accuracy."""
    import time

    import fundl as fl
    from .layers import Dense
    from .models import Sequential

    fl.manual_seed(args.seed)
    try:
        (x_train, y_train), (x_test, y_test), source = _load_demo_data()
    except _UserError as e:
        print(f"fundl demo: {e}", file=sys.stderr)
        return 1
    if args.limit is not None:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
        x_test, y_test = x_test[:args.limit], y_test[:args.limit]
    classes = int(y_train.max()) + 1
    if source == "MNIST":
        layers = [Dense(256, activation="relu", input_shape=x_train.shape[1:]),
                  Dense(128, activation="relu"), Dense(classes, activation="softmax")]
        epochs = args.epochs or 3
    else:
        layers = [Dense(64, activation="tanh", input_shape=x_train.shape[1:]),
                  Dense(64, activation="tanh"), Dense(classes, activation="softmax")]
        epochs = args.epochs or 200  # ~3 s: the spiral needs many small epochs
    model = Sequential(layers, name=f"demo_{source.lower()}")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    print(f"fundl demo: a multilayer perceptron on {source} "
          f"({len(x_train)} training, {len(x_test)} test samples)")
    model.summary()
    _announce_compilation(["activation"])
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=128, epochs=epochs, validation_split=0.1,
              verbose=args.verbose)
    elapsed = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=1024, verbose=0)
    print(f"test accuracy {accuracy:.4f} (loss {loss:.4f}) after {epochs} epochs "
          f"in {elapsed:.1f} s")
    model.save(args.output)
    print(f"model saved to {args.output} (reload with fundl.models.load_model)")
    return 0


def _positive_int(text):
    value = int(text)
    if value < 10:
        raise argparse.ArgumentTypeError(f"must be an integer >= 10, got {text}")
    return value


def _zoo(args) -> int:
    """List the named architectures of :mod:`fundl.zoo`."""
    from .zoo import list_models

    models = list_models()
    width = max(len(name) for name in models)
    print("fundl.zoo: functions returning models (all take input_shape= and classes=)")
    for name, description in models.items():
        print(f"  {name:<{width}}  {description}")
    return 0


_BENCH_DIR = "benchmarks"


def _benchmarks():
    """The benchmark scripts of a source checkout: name -> path (empty when installed alone)."""
    import pathlib

    folder = pathlib.Path(__file__).resolve().parent.parent / _BENCH_DIR
    if not folder.is_dir():
        return {}
    return {p.stem[len("bench_"):]: p for p in sorted(folder.glob("bench_*.py"))}


def _bench(args) -> int:
    """Run the benchmark scripts against PyTorch (each prints its table and ratios)."""
    import subprocess

    scripts = _benchmarks()
    if not scripts:
        print("fundl bench runs the scripts in the benchmarks/ folder of fundl's source tree, "
              "which this installation does not have. Clone the repository and install it with "
              "`pip install -e .` to run them.", file=sys.stderr)
        return 1
    if args.list:
        for name, path in scripts.items():
            doc = path.read_text().split('"""')[1].strip().splitlines()[0]
            print(f"  {name:<12s} {doc}")
        return 0
    unknown = [n for n in args.names if n not in scripts]
    if unknown:
        print(f"fundl bench: unknown benchmark {', '.join(unknown)}; choose from "
              f"{', '.join(scripts)}.", file=sys.stderr)
        return 2
    status = 0
    for name in args.names or list(scripts):
        print(f"\n=== fundl bench {name}: python {_BENCH_DIR}/{scripts[name].name} "
              f"{' '.join(args.options)}".rstrip(), flush=True)
        done = subprocess.run([sys.executable, str(scripts[name]), *args.options],
                              cwd=scripts[name].parent)
        status = status or done.returncode
    return status


def main(argv=None) -> int:
    """Run the ``fundl`` command with ``argv`` (``sys.argv[1:]`` by default); returns the exit code.

    Example:
        >>> main(["demo", "--epochs", "1", "--limit", "2000"])  # doctest: +SKIP
    """
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="fundl", description="fundl: deep learning from first principles, fast enough to use.")
    parser.add_argument("--version", action="version", version=f"fundl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command")
    demo = sub.add_parser("demo", help="train a model end to end and report its accuracy")
    demo.add_argument("--epochs", type=int, default=None,
                      help="epochs (default: 3 on MNIST, 200 on the spiral)")
    demo.add_argument("--output", default="fundl_demo.fundl", help="where to save the model")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    demo.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                      help="train and test on at most N samples each (a quick check)")
    demo.set_defaults(run=_demo)
    zoo = sub.add_parser("zoo", help="list the model zoo (LeNet-5 to DenseNet)")
    zoo.set_defaults(run=_zoo)
    from ._cli_train import add_parser as add_train_parser

    add_train_parser(sub)
    from ._cli_playground import add_parser as add_playground_parser

    add_playground_parser(sub)
    bench = sub.add_parser(
        "bench", help="time fundl against PyTorch (the benchmarks/ scripts of a source tree)",
        description="Run benchmarks/bench_<name>.py for each name (all by default); each times "
                    "fundl and PyTorch, each in processes of its own, and prints the ratios. "
                    "Options after -- go to every script, e.g. fundl bench cnn -- --rounds 3.")
    bench.add_argument("names", nargs="*", metavar="name", help="benchmarks to run (see --list)")
    bench.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    bench.set_defaults(run=_bench, options=[])
    argv = list(sys.argv[1:] if argv is None else argv)
    passed = None  # what follows "--": options for the benchmark scripts
    if "--" in argv:
        cut = argv.index("--")
        argv, passed = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    if passed is not None:
        if getattr(args, "command", None) != "bench":
            parser.error("options after -- are only for `fundl bench`")
        args.options = passed
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    if args.command in ("demo", "train"):
        # The command owns its process: take fundl's process-wide speed settings
        # (a library user opts in with the same call, see fundl.config).
        import warnings

        from .config import tune_process

        with warnings.catch_warnings():  # OpenMP already running (fundl.cli.main called twice
            warnings.simplefilter("ignore", RuntimeWarning)  # in one process): nothing to do
            tune_process()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
