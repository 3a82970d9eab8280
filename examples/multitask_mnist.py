"""Multitask learning (the lecture's slide): one shared trunk, two heads, trained jointly.

    FUNDL_DATA_DIR=../shared/data python examples/multitask_mnist.py [--train 10000] [--epochs 5]
        [--plots DIR]

Task A is the digit (10 classes); task B is a second label of the same image: whether the
digit is "written thick", i.e. has more ink than the median image of its own class (a
property of the strokes, not of the class, so it is not a function of task A's answer).
The multitask network shares a dense trunk (784-256-128) between a softmax head for the
digit and a sigmoid head for the thickness, and is trained on the sum of the two losses
weighted by ``loss_weights``; it is compared with two single-task networks of the same shape,
each trained on its own task for the same number of epochs. The table gives the test accuracy
of each task, and the number of weights (the multitask network has one trunk instead of two).
With ``--plots DIR`` it writes the multitask network's training curves (both losses and both
accuracies) and a bar chart of the test accuracies, multitask against single-task, as PNGs.
"""
import argparse
import importlib.util
import os
import time

import numpy as np

import fundl as fl
from fundl.datasets import mnist
from fundl.layers import Dense, Dropout, Input
from fundl.models import Model


def thickness_labels(x, y):
    """1 where an image has more ink than the median image of its own class, else 0.

    Args:
        x: images (n, 784) in [0, 1].
        y: digit labels (n,).

    Returns:
        float32 array (n, 1).
    """
    ink = x.sum(axis=1)
    thick = np.zeros(len(x), dtype=np.float32)
    for digit in range(10):
        mine = y == digit
        thick[mine] = ink[mine] > np.median(ink[mine])
    return thick[:, None]


def trunk(inputs):
    h = Dense(256, activation="relu", name="shared_1")(inputs)
    h = Dropout(0.2)(h)
    return Dense(128, activation="relu", name="shared_2")(h)


def multitask_model(loss_weights):
    inputs = Input(shape=(784,), name="image")
    h = trunk(inputs)
    digit = Dense(10, activation="softmax", name="digit")(h)
    thick = Dense(1, activation="sigmoid", name="thick")(h)
    model = Model(inputs, [digit, thick], name="multitask")
    model.compile(optimizer="adam",
                  loss={"digit": "sparse_categorical_crossentropy", "thick": "binary_crossentropy"},
                  loss_weights=loss_weights,
                  metrics={"digit": ["accuracy"], "thick": ["accuracy"]})
    return model


def single_task_model(task):
    inputs = Input(shape=(784,), name="image")
    h = trunk(inputs)
    if task == "digit":
        out, loss = Dense(10, activation="softmax", name="digit")(h), \
            "sparse_categorical_crossentropy"
    else:
        out, loss = Dense(1, activation="sigmoid", name="thick")(h), "binary_crossentropy"
    model = Model(inputs, out, name=f"only_{task}")
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=10000, help="training images")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--weight-thick", type=float, default=1.0,
                        help="loss weight of the thickness head (the digit head's is 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", default=None, help="write PNG pictures to this directory")
    args = parser.parse_args(argv)

    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    x_train = x_train[:args.train].reshape(-1, 784).astype(np.float32) / 255
    y_train = y_train[:args.train].astype(np.int64)
    x_test = x_test.reshape(-1, 784).astype(np.float32) / 255
    y_test = y_test.astype(np.int64)
    t_train, t_test = thickness_labels(x_train, y_train), thickness_labels(x_test, y_test)

    results = {}
    start = time.perf_counter()
    fl.manual_seed(args.seed)
    joint = multitask_model({"digit": 1.0, "thick": args.weight_thick})
    history = joint.fit(x_train, {"digit": y_train, "thick": t_train}, epochs=args.epochs,
                        batch_size=64, verbose=0)
    digit_p, thick_p = joint.predict(x_test, batch_size=1024)
    results["multitask (one trunk, two heads)"] = (
        np.mean(digit_p.argmax(1) == y_test), np.mean((thick_p > 0.5) == (t_test > 0.5)),
        joint.count_params())
    singles = {}
    for task, target in (("digit", y_train), ("thick", t_train)):
        fl.manual_seed(args.seed)
        model = single_task_model(task)
        model.fit(x_train, target, epochs=args.epochs, batch_size=64, verbose=0)
        singles[task] = model
    digit_only = np.mean(singles["digit"].predict(x_test, batch_size=1024).argmax(1) == y_test)
    thick_only = np.mean((singles["thick"].predict(x_test, batch_size=1024) > 0.5)
                         == (t_test > 0.5))
    results["two single-task networks"] = (
        digit_only, thick_only,
        singles["digit"].count_params() + singles["thick"].count_params())
    seconds = time.perf_counter() - start

    print(f"MNIST, {args.train} training images, {args.epochs} epochs, loss weights "
          f"digit 1.0 / thick {args.weight_thick}")
    print(f"{'':34s} {'digit acc':>10s} {'thick acc':>10s} {'weights':>10s}")
    for name, (digit, thick, weights) in results.items():
        print(f"{name:34s} {digit:10.4f} {thick:10.4f} {weights:10,d}")
    print(f"({seconds:.0f} s)")
    if args.plots:
        for path in plot(results, history, args, args.plots):
            print(f"wrote {path}")
    return results


def plot(results, history, args, folder):
    """The pictures of ``--plots``: the joint network's curves, the accuracies as bars."""
    spec = importlib.util.spec_from_file_location(  # examples/_plots.py, beside this file
        "_plots", os.path.join(os.path.dirname(os.path.abspath(__file__)), "_plots.py"))
    plots = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plots)
    paths = [plots.path(folder, "multitask_mnist_history.png"),
             plots.path(folder, "multitask_mnist_accuracy.png")]
    fl.viz.plot_history(history, to_file=paths[0])
    series = {f"{name} ({weights:,} weights)": [digit, thick]
              for name, (digit, thick, weights) in results.items()}
    plots.grouped_bars(["digit (10 classes)", "thick or thin (2 classes)"], series,
                       title=f"MNIST, {args.train} training images, {args.epochs} epochs: "
                             f"test accuracy per task", to_file=paths[1])
    return paths


if __name__ == "__main__":
    main()
