"""A deep belief network on MNIST with few labels: pre-trained vs random initial weights.

    FUNDL_DATA_DIR=../shared/data python examples/dbn_mnist.py [--unlabelled 10000]
        [--labelled 1000] [--epochs 30] [--hidden 500 500] [--plots DIR]

The Hinton 2006 story, measured: fundl.energy.DBN pre-trains a stack of RBMs greedily on
--unlabelled binarised training images (no labels used), then DBN.to_model(10) unrolls it into
a Sequential of sigmoid Dense layers plus a softmax output, which is fine-tuned on only
--labelled labelled images. The same network from random (Glorot) weights gets the same
fine-tuning budget (optimizer, epochs, batch size, data). Both are scored on the 10,000 test
images.

With ``--plots DIR`` it writes the first RBM's filters (each hidden unit's 784 weights as a
28x28 image), the fine-tuning curves of both initialisations (loss and training accuracy per
epoch) and the two test accuracies as bars.
"""
import argparse
import importlib.util
import os
import time

import numpy as np

import fundl as fl
from fundl.datasets import mnist
from fundl.energy import DBN
from fundl.layers import Dense
from fundl.models import Sequential
from fundl.optimizers import SGD


def binarise(x):
    return (x.reshape(len(x), -1) > 127).astype(np.float32)


def fine_tune(model, x, y, xt, yt, args):
    model.compile(optimizer=SGD(learning_rate=args.learning_rate, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=args.epochs, batch_size=args.batch_size, verbose=0)
    _, accuracy = model.evaluate(xt, yt, batch_size=1000, verbose=0)
    return float(accuracy), history


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unlabelled", type=int, default=10000)
    parser.add_argument("--labelled", type=int, default=1000)
    parser.add_argument("--test", type=int, default=10000)
    parser.add_argument("--hidden", type=int, nargs="+", default=[500, 500])
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=30, help="fine-tuning epochs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", default=None, help="write PNG pictures to this directory")
    args = parser.parse_args(argv)
    fl.manual_seed(args.seed)

    (x, y), (xt, yt) = mnist.load_data()
    x, xt = binarise(x), binarise(xt[:args.test])
    yt = yt[:args.test].astype(np.int64)
    unlabelled = x[:args.unlabelled]
    # the labelled images come from elsewhere in the training set (disjoint)
    labelled_x = x[-args.labelled:]
    labelled_y = y[-args.labelled:].astype(np.int64)

    start = time.perf_counter()
    dbn = DBN(tuple(args.hidden), learning_rate=0.05, n_iter=args.pretrain_epochs,
              random_state=args.seed).fit(unlabelled)
    pretrain_time = time.perf_counter() - start
    print(f"pre-trained {len(args.hidden)} RBMs {args.hidden} on {len(unlabelled)} unlabelled "
          f"images in {pretrain_time:.0f} s")
    acc_dbn, history_dbn = fine_tune(dbn.to_model(10), labelled_x, labelled_y, xt, yt, args)

    fl.manual_seed(args.seed)
    layers = [Dense(h, activation="sigmoid", **({"input_dim": 784} if i == 0 else {}))
              for i, h in enumerate(args.hidden)] + [Dense(10, activation="softmax")]
    acc_random, history_random = fine_tune(Sequential(layers), labelled_x, labelled_y, xt, yt, args)
    print(f"fine-tuned on {args.labelled} labels for {args.epochs} epochs: test accuracy "
          f"DBN-initialised {acc_dbn:.4f}, random-initialised {acc_random:.4f}")
    if args.plots:
        for path in plot(dbn, history_dbn.history, history_random.history, acc_dbn, acc_random,
                         args, args.plots):
            print(f"wrote {path}")
    return {"dbn_accuracy": acc_dbn, "random_accuracy": acc_random,
            "dbn_loss": history_dbn.history["loss"],
            "random_loss": history_random.history["loss"], "pretrain_time": pretrain_time}


def plot(dbn, logs_dbn, logs_random, acc_dbn, acc_random, args, folder):
    """The pictures of ``--plots``: first-RBM filters, fine-tuning curves, accuracy bars."""
    spec = importlib.util.spec_from_file_location(  # examples/_plots.py, beside this file
        "_plots", os.path.join(os.path.dirname(os.path.abspath(__file__)), "_plots.py"))
    plots = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plots)
    paths = [plots.path(folder, "dbn_mnist_filters.png"),
             plots.path(folder, "dbn_mnist_finetuning.png"),
             plots.path(folder, "dbn_mnist_accuracy.png")]
    # components_ is (hidden, 784): its transpose is a Dense kernel (784, hidden)
    fl.viz.plot_filters(dbn.rbms_[0].components_.T, shape=(28, 28), max_filters=64,
                        to_file=paths[0])
    from matplotlib.ticker import MaxNLocator

    fig = plots.figure((9.0, 3.6))
    epochs = np.arange(1, args.epochs + 1)
    for k, name in enumerate(["loss", "accuracy"]):
        ax = fig.add_subplot(1, 2, k + 1)
        ax.plot(epochs, logs_dbn[name], marker="o", markersize=3, label="DBN-initialised")
        ax.plot(epochs, logs_random[name], marker="o", markersize=3, label="random (Glorot)")
        ax.set_xlabel("fine-tuning epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"training {name}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"fine-tuning on {args.labelled} labelled images", fontsize=10)
    fig.tight_layout()
    plots.save_figure(fig, paths[1])
    plots.grouped_bars([f"{args.labelled} labels, {args.epochs} epochs"],
                       {"DBN-initialised": [acc_dbn], "random (Glorot)": [acc_random]},
                       title=f"MNIST test accuracy ({args.test} images)", to_file=paths[2],
                       figsize=(5.0, 4.2))
    return paths


if __name__ == "__main__":
    main()
