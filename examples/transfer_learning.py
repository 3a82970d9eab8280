"""Layer transfer on MNIST: a CNN trained on digits 0-4 helps to learn digits 5-9 from few labels.

    FUNDL_DATA_DIR=/work/shared/data python examples/transfer_learning.py [--labels 5 10 50]
        [--plots DIR] [--limit N]

1. Train a small CNN (a convolutional base: Conv-ReLU-MaxPool x 2 and a third Conv-ReLU,
   then a dense head) on all the training digits 0-4 (3 epochs).
2. Transfer: a new copy of the base receives the trained weights
   (``base.set_weights(pretrained_base.get_weights())``), is frozen
   (``base.trainable = False``, then ``compile``), and gets a new head; only the head learns,
   on digits 5-9 with a few labelled images per class.
3. Baseline: the same architecture from random weights, trained on the same few labels with
   the same optimizer and number of gradient steps.

Both are tested on every test image of digits 5-9, for several random draws of the labelled
images. Measured (3 draws, 100 s in all on two quiet CPU cores): with 5 labels per class the
transferred features give 86 % against 78 % from scratch, with 10 labels 93 % against 90 %,
with 50 labels 96.4 % against 95.0 %: the fewer the labels, the more the transfer helps.

With ``--plots DIR`` it writes the pre-training curves and the test accuracy against the
number of labels (transfer and from scratch, the spread over the draws as error bars) as PNGs.
``--limit N`` pre-trains on the first N training images of digits 0-4 and tests on the first
N test images of each task (a quick run).
"""
import argparse
import importlib.util
import os
import time

import numpy as np

import fundl as fl
from fundl.datasets import mnist
from fundl.layers import Conv2D, Dense, Dropout, Flatten, Input, MaxPooling2D
from fundl.models import Sequential


def build_base():
    """The convolutional base: (28, 28, 1) images -> 576 features (3 x 3 x 64 flattened).

    Returns:
        An uncompiled Sequential model (55,744 weights).
    """
    return Sequential([
        Input(shape=(28, 28, 1)),
        Conv2D(32, 3, activation="relu", name="conv1"),
        MaxPooling2D(2, name="pool1"),
        Conv2D(64, 3, activation="relu", name="conv2"),
        MaxPooling2D(2, name="pool2"),
        Conv2D(64, 3, activation="relu", name="conv3"),
        Flatten(name="flatten"),
    ], name="base")


def build_head(classes=5):
    """A small dense classifier for the base's features (37,253 weights for 5 classes).

    Returns:
        An uncompiled Sequential model: (batch, features) -> (batch, classes) probabilities.
    """
    return Sequential([
        Dense(64, activation="relu", name="fc"),
        Dropout(0.5, name="dropout"),
        Dense(classes, activation="softmax", name="predictions"),
    ], name="head")


def compiled(base, learning_rate=1e-3):
    """``base`` + a new head, compiled (after any ``trainable`` change, as Keras requires).

    Args:
        base: the convolutional base, frozen or not.
        learning_rate: Adam's learning rate.

    Returns:
        A compiled Sequential model: (batch, 28, 28, 1) -> (batch, 5) probabilities.
    """
    model = Sequential([base, build_head()])
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=fl.optimizers.Adam(learning_rate), metrics=["accuracy"])
    return model


def few_labels(x, y, per_class, rng):
    """``per_class`` random examples of every class of ``y``, shuffled together.

    Args:
        x, y: images (n, 28, 28, 1) and integer labels (n,).
        per_class: examples to draw (without replacement) from each class.
        rng: a NumPy Generator.

    Returns:
        ``(x_few, y_few)`` of ``per_class * classes`` examples.
    """
    index = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False)
                            for c in np.unique(y)])
    rng.shuffle(index)
    return x[index], y[index]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, nargs="+", default=[5, 10, 50],
                        help="labelled training images per class of digits 5-9")
    parser.add_argument("--draws", type=int, default=3,
                        help="random draws of the labelled images per label count")
    parser.add_argument("--pretrain-epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=600,
                        help="gradient steps on the few labels (batch 32), the same for both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None,
                        help="pre-train on the first N images of digits 0-4 and test on the "
                             "first N test images of each task (a quick run)")
    parser.add_argument("--plots", default=None, help="write PNG pictures to this directory")
    args = parser.parse_args(argv)
    fl.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    x_train = x_train[..., None].astype(np.float32) / 255
    x_test = x_test[..., None].astype(np.float32) / 255
    low_train, low_test = y_train < 5, y_test < 5
    high_test = ~low_test

    # 1. the source task: digits 0-4, every label
    start = time.perf_counter()
    pretrained_base = build_base()
    source = compiled(pretrained_base)
    source.summary()
    x_source, y_source = x_train[low_train][:args.limit], y_train[low_train][:args.limit]
    pretraining = source.fit(x_source, y_source, batch_size=128, epochs=args.pretrain_epochs,
                             verbose=2)
    _, accuracy = source.evaluate(x_test[low_test][:args.limit], y_test[low_test][:args.limit],
                                  batch_size=1000, verbose=0)
    print(f"digits 0-4: test accuracy {accuracy:.4f} "
          f"({len(x_source)} training images, {time.perf_counter() - start:.0f} s)\n")

    # 2. and 3. the target task: digits 5-9 (as classes 0-4) from a few labels
    x_high, y_high = x_train[~low_train], y_train[~low_train] - 5
    xt_high, yt_high = x_test[high_test][:args.limit], y_test[high_test][:args.limit] - 5
    results = []
    for per_class in args.labels:
        accuracies = {"transfer": [], "scratch": []}
        for draw in range(args.draws):
            x_few, y_few = few_labels(x_high, y_high, per_class, rng)
            epochs = max(1, round(args.steps * 32 / len(x_few)))

            base = build_base()
            base.set_weights(pretrained_base.get_weights())  # the weights move; layers are new
            base.trainable = False  # frozen: compile() below fixes what trains
            transfer = compiled(base)
            transfer.fit(x_few, y_few, batch_size=32, epochs=epochs, verbose=0)
            accuracies["transfer"].append(
                transfer.evaluate(xt_high, yt_high, batch_size=1000, verbose=0)[1])
            moved = max(np.abs(a - b).max() for a, b in zip(base.get_weights(),
                                                           pretrained_base.get_weights()))

            scratch = compiled(build_base())
            scratch.fit(x_few, y_few, batch_size=32, epochs=epochs, verbose=0)
            accuracies["scratch"].append(
                scratch.evaluate(xt_high, yt_high, batch_size=1000, verbose=0)[1])
            print(f"digits 5-9, {per_class} labels per class, draw {draw + 1}: transfer "
                  f"{accuracies['transfer'][-1]:.4f}, from scratch "
                  f"{accuracies['scratch'][-1]:.4f} ({epochs} epochs; the frozen base moved "
                  f"by {moved:g})")
        results.append((per_class, len(x_few), accuracies))

    trained = sum(int(np.prod(w.shape)) for w in transfer.trainable_weights)
    print(f"\nTest accuracy on digits 5-9 ({len(yt_high)} test images), mean +- std of "
          f"{args.draws} random draws of the labelled images; weights trained: transfer "
          f"{trained:,} (the head), from scratch {scratch.count_params():,}")
    print("  labels/class  images   transfer         from scratch")
    for per_class, n, acc in results:
        print(f"  {per_class:12d}  {n:6d}   {np.mean(acc['transfer']):.4f} +- "
              f"{np.std(acc['transfer']):.4f}  {np.mean(acc['scratch']):.4f} +- "
              f"{np.std(acc['scratch']):.4f}")
    print(f"Total time: {time.perf_counter() - start:.0f} s")
    if args.plots:
        for path in plot(results, pretraining, args, len(yt_high), args.plots):
            print(f"wrote {path}")
    return results


def plot(results, pretraining, args, n_test, folder):
    """The pictures of ``--plots``: pre-training curves; accuracy against labels per class."""
    spec = importlib.util.spec_from_file_location(  # examples/_plots.py, beside this file
        "_plots", os.path.join(os.path.dirname(os.path.abspath(__file__)), "_plots.py"))
    plots = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plots)
    paths = [plots.path(folder, "transfer_learning_pretraining.png"),
             plots.path(folder, "transfer_learning_accuracy.png")]
    fl.viz.plot_history(pretraining, to_file=paths[0])
    kinds = {"transfer (frozen base, new head)": "transfer", "from scratch": "scratch"}
    plots.grouped_bars(
        [f"{per_class}" for per_class, _, _ in results],
        {label: [np.mean(acc[kind]) for _, _, acc in results] for label, kind in kinds.items()},
        errors={label: [np.std(acc[kind]) for _, _, acc in results]
                for label, kind in kinds.items()} if args.draws > 1 else None,
        xlabel="labelled training images per class of digits 5-9",
        title=f"digits 5-9: test accuracy ({n_test} images), mean of {args.draws} draws",
        to_file=paths[1])
    return paths


if __name__ == "__main__":
    main()
