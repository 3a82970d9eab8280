"""``fundl train MODEL --dataset NAME``: train a zoo model on a dataset from the command line.

The one-line trainer a Keras user expects: a :mod:`fundl.zoo` architecture, data from
:mod:`fundl.datasets` scaled to float32 in [0, 1], sparse categorical cross-entropy, ``fit``
with a validation split, the test accuracy, and the trained model saved to a ``.fundl`` file.

    $ fundl train lenet5 --dataset mnist --epochs 3
    $ fundl train resnet_cifar --depth 56 --dataset cifar10 --optimizer sgd --learning-rate 0.1

Exit codes: 0 trained and saved; 2 a bad command line (argparse's code); 1 the run itself
failed (a dataset that cannot be found or read, a model that does not fit the images).
"""
from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import sys
import time

from .cli import _positive_int

# Per dataset: the image shape models are built for (channels-last, MNIST-like data gets a
# channel axis) and the number of classes. Fixed here, not read from the labels, so that a
# --limit subset missing a class still gets a 10-way classifier, and so the model is built
# (and a too-small input reported) before a possibly long download.
DATASETS = {
    "mnist": ((28, 28, 1), 10, "MNIST"),
    "fashion_mnist": ((28, 28, 1), 10, "Fashion-MNIST"),
    "cifar10": ((32, 32, 3), 10, "CIFAR-10"),
}

# The zoo's family functions take a leading argument without a default; the trainer uses
# the smallest member. Functions whose signature has a default (resnet_cifar, ...) keep it.
_FAMILY_DEFAULTS = {"resnet": 18, "densenet": 121, "vgg": "A"}
# Command-line option of each zoo argument the trainer passes through.
_MODEL_OPTIONS = {"depth": "--depth", "config": "--config", "growth_rate": "--growth-rate"}
# Models sized for 28x28 and 32x32 images, suggested when one for larger inputs cannot be built.
_SMALL_MODELS = "lenet5, resnet_cifar or densenet_bc_cifar (made for 28x28 to 32x32 images)"


class _UsageError(Exception):
    """A bad combination of options, found after parsing: reported like argparse (exit 2)."""


class _RunError(Exception):
    """The run failed for a reason outside the command line (exit 1, no traceback)."""


def _fraction(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _positive_float(text):
    value = float(text)
    if not value > 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def _at_least_one(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``train`` subcommand on ``subparsers`` (from ``add_subparsers``).

    Args:
        subparsers: the ``fundl`` parser's subparsers action.

    Returns:
        The ``train`` parser; its ``run`` default is :func:`run`.

    Example:
        >>> sub = argparse.ArgumentParser(prog="fundl").add_subparsers()
        >>> train = add_parser(sub)
    """
    from .zoo import list_models

    train = subparsers.add_parser(
        "train", help="train a zoo model on MNIST, Fashion-MNIST or CIFAR-10 and save it",
        description="Train a fundl.zoo model on a dataset of fundl.datasets (images scaled to "
                    "[0, 1], sparse categorical cross-entropy), report the test accuracy and "
                    "save the model.",
        epilog="Models: " + ", ".join(list_models()) + ". Datasets are read from "
               "$FUNDL_DATA_DIR/<dataset>/ or the cache, else downloaded. Example: "
               "fundl train resnet_cifar --depth 20 --dataset cifar10 --epochs 10")
    train.add_argument("model", choices=list(list_models()), metavar="MODEL",
                       help="a model of `fundl zoo`, e.g. lenet5, resnet_cifar, vgg11")
    train.add_argument("--dataset", required=True, choices=list(DATASETS),
                       help="the data to train and test on")
    train.add_argument("--epochs", type=_at_least_one, default=3, help="default: 3")
    train.add_argument("--batch-size", type=_at_least_one, default=128, help="default: 128")
    train.add_argument("--optimizer", default="adam",
                       help="sgd, adam, adamw, rmsprop, adagrad or adadelta (default: adam)")
    train.add_argument("--learning-rate", type=_positive_float, default=None, metavar="LR",
                       help="default: the optimizer's Keras default (adam 0.001, sgd 0.01)")
    train.add_argument("--validation-split", type=_fraction, default=0.1, metavar="FRACTION",
                       help="fraction of the training data held out for validation, 0 for "
                            "none (default: 0.1)")
    train.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                       help="train and test on at most N samples each (a quick check)")
    train.add_argument("--depth", type=int, default=None,
                       help="depth of resnet (default 18), densenet (121), resnet_cifar (20) "
                            "or densenet_bc_cifar (100)")
    train.add_argument("--config", default=None,
                       help='configuration of vgg: A, A-LRN, B, C, D or E (default: "A")')
    train.add_argument("--growth-rate", type=int, default=None, metavar="K",
                       help="growth rate of densenet_bc_cifar (default: 12)")
    train.add_argument("--seed", type=int, default=0, help="seed of the weight initialisation")
    train.add_argument("--output", default=None, metavar="PATH",
                       help="where to save the model (default: <MODEL>_<dataset>.fundl)")
    train.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                       help="0 silent, 1 progress bar, 2 one line per epoch (default: 1)")
    train.add_argument("--data-dir", default=None, metavar="DIR",
                       help="folder holding <dataset>/ (sets FUNDL_DATA_DIR for this run)")
    train.set_defaults(run=run)
    return train


def run(args) -> int:
    """Train, evaluate and save as ``args`` (parsed by the ``train`` parser) says.

    Returns:
        The exit code: 0 done, 1 the run failed, 2 a bad combination of options. Failures
        are reported on stderr in one message, without a traceback.
    """
    try:
        return _train(args)
    except _UsageError as e:
        print(f"fundl train: error: {e}", file=sys.stderr)
        return 2
    except _RunError as e:
        print(f"fundl train: {e}", file=sys.stderr)
        return 1


def _train(args) -> int:
    import fundl as fl

    from . import optimizers

    output = args.output or f"{args.model}_{args.dataset}.fundl"
    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):  # found now, not after hours of training
        raise _UsageError(f"--output {output}: the folder {parent} does not exist.")
    try:
        optimizer = optimizers.get(args.optimizer)
        if args.learning_rate is not None:
            optimizer.learning_rate = args.learning_rate
    except (TypeError, ValueError) as e:
        raise _UsageError(f"--optimizer/--learning-rate: {e}") from e

    input_shape, classes, title = DATASETS[args.dataset]
    fl.manual_seed(args.seed)
    model = _build(args, input_shape, classes, title)
    (x_train, y_train), (x_test, y_test) = _load(args)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer,
                  metrics=["accuracy"])
    print(f"fundl train: {model.name} ({model.count_params():,} parameters) on {title} "
          f"({len(x_train)} training, {len(x_test)} test samples), "
          f"{type(optimizer).__name__} with learning rate {optimizer.learning_rate:g}")
    from .cli import _announce_compilation

    _announce_compilation(["activation", "conv", "pool"])
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
              validation_split=args.validation_split, verbose=args.verbose)
    elapsed = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=args.batch_size, verbose=0)
    epochs = f"{args.epochs} epoch" + ("s" if args.epochs > 1 else "")
    print(f"test accuracy {accuracy:.4f} (loss {loss:.4f}) after {epochs} in {elapsed:.1f} s")
    model.save(output)
    print(f"model saved to {output} (reload with fundl.models.load_model)")
    return 0


def _build(args, input_shape, classes, title):
    """The zoo model ``args.model`` for ``input_shape``, with --depth/--config/--growth-rate."""
    from . import zoo

    function = getattr(zoo, args.model)
    params = inspect.signature(function).parameters
    kwargs = {}
    for arg, option in _MODEL_OPTIONS.items():
        value = getattr(args, arg)
        if arg not in params:
            if value is not None:
                takers = sorted(n for n in zoo.list_models()
                                if arg in inspect.signature(getattr(zoo, n)).parameters)
                raise _UsageError(f"{option} applies to {', '.join(takers)}; "
                                  f"{args.model} has no {arg}.")
            continue
        default = params[arg].default
        if value is None:
            value = _FAMILY_DEFAULTS.get(args.model) if default is inspect.Parameter.empty \
                else default
        if value is None:
            raise _UsageError(f"{args.model} needs {option}.")
        kwargs[arg] = value
    try:
        return function(input_shape=input_shape, classes=classes, **kwargs)
    except ValueError as e:
        # input_shape comes from DATASETS, so any other argument the zoo rejects came from
        # the command line (--depth 21, --config Z); the zoo's message names it either way.
        if "input_shape" not in str(e):
            raise _UsageError(str(e)) from e
        raise _RunError(f"{e}\n{args.model} is made for larger images; for {title}'s "
                        f"{input_shape[0]}x{input_shape[1]} images try {_SMALL_MODELS}.") from e


@contextlib.contextmanager
def _data_dir(path):
    """Set ``FUNDL_DATA_DIR`` to ``path`` (when given) for the block, restoring it afterwards."""
    from .datasets._files import DATA_DIR_ENV

    if path is None:
        yield
        return
    old = os.environ.get(DATA_DIR_ENV)
    os.environ[DATA_DIR_ENV] = os.fspath(path)
    try:
        yield
    finally:
        if old is None:
            del os.environ[DATA_DIR_ENV]
        else:
            os.environ[DATA_DIR_ENV] = old


def _load(args):
    """``((x_train, y_train), (x_test, y_test))``: float32 images in [0, 1], channels-last,
    int64 labels of shape (n,), at most ``args.limit`` samples each."""
    import numpy as np

    from . import datasets
    from .datasets import ChecksumError, DatasetNotFoundError

    loader = getattr(datasets, args.dataset).load_data
    try:
        with _data_dir(args.data_dir):
            (x_train, y_train), (x_test, y_test) = loader(progress=args.verbose > 0)
    except (DatasetNotFoundError, ChecksumError) as e:
        raise _RunError(f"cannot load {args.dataset}.\n{e}") from e
    except (OSError, ValueError) as e:  # an unreadable or malformed local file
        raise _RunError(f"cannot read {args.dataset}: {e}") from e

    def prepare(x, y):
        if args.limit is not None:
            x, y = x[:args.limit], y[:args.limit]
        x = x.astype(np.float32) / np.float32(255)
        if x.ndim == 3:  # MNIST-like (n, 28, 28): add the channel axis
            x = x[..., None]
        return x, y.reshape(-1).astype(np.int64)  # CIFAR's labels come as (n, 1)

    return prepare(x_train, y_train), prepare(x_test, y_test)
