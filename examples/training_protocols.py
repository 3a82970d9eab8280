"""The lecture's three training protocols on MNIST with few labels.

    FUNDL_DATA_DIR=../shared/data python examples/training_protocols.py [--labels 100 1000]
        [--unlabelled 20000] [--pretrain-epochs 5] [--seeds 2] [--plots DIR]

(a) **supervised from scratch**: a 784-256-64-10 network trained on the labelled images only;
(b) **unsupervised pre-training, then a linear SVM**: an autoencoder (784-256-64-256-784)
    learns features from unlabelled images; a linear classifier with the multi-class hinge loss
    (``categorical_hinge``, a linear SVM trained by gradient descent) is trained on the
    frozen 64-dimensional codes of the labelled images;
(c) **unsupervised pre-training, then fine-tuning**: the same network as (a), its first two
    layers initialised from the autoencoder's encoder, then trained end to end on the labels.

Every protocol sees the same labelled images and gets the same number of gradient steps;
the test accuracy on all 10,000 test images is reported, averaged over ``--seeds`` draws of
the labelled set. With ``--plots DIR`` it writes the table as a grouped bar chart (the three
protocols at each label count, the spread over the draws as error bars).
"""
import argparse
import importlib.util
import os
import time

import numpy as np

import fundl as fl
from fundl.datasets import mnist
from fundl.layers import Dense, Input
from fundl.models import Sequential


def encoder():
    return Sequential([Input(shape=(784,)), Dense(256, activation="relu", name="enc_1"),
                       Dense(64, activation="relu", name="enc_2")], name="encoder")


def pretrain_autoencoder(x_unlabelled, epochs, seed):
    """An autoencoder trained to reconstruct ``x_unlabelled``; returns its encoder."""
    fl.manual_seed(seed)
    enc = encoder()
    decoder = Sequential([Dense(256, activation="relu"), Dense(784, activation="sigmoid")],
                         name="decoder")
    autoencoder = Sequential([enc, decoder], name="autoencoder")
    autoencoder.compile(optimizer="adam", loss="binary_crossentropy")
    autoencoder.fit(x_unlabelled, x_unlabelled, epochs=epochs, batch_size=128, verbose=0)
    return enc


def classifier(pretrained=None):
    """784-256-64-10; the first two layers copy ``pretrained`` (an encoder) when given."""
    enc = encoder()
    if pretrained is not None:
        enc.set_weights(pretrained.get_weights())
    model = Sequential([enc, Dense(10, activation="softmax", name="out")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def linear_svm(n_features):
    model = Sequential([Input(shape=(n_features,)), Dense(10, name="svm")])
    model.compile(optimizer=fl.optimizers.Adam(1e-2), loss="categorical_hinge")
    return model


def run(x_train, y_train, x_test, y_test, enc, n_labels, steps, seed):
    """Test accuracies of the three protocols on ``n_labels`` labelled images."""
    rng = np.random.default_rng(seed)
    index = rng.choice(len(x_train), n_labels, replace=False)
    x, y = x_train[index], y_train[index]
    batch = min(32, n_labels)
    epochs = max(1, int(round(steps * batch / n_labels)))
    out = {}
    fl.manual_seed(seed)
    scratch = classifier()
    scratch.fit(x, y, epochs=epochs, batch_size=batch, verbose=0)
    out["(a) supervised from scratch"] = scratch.evaluate(x_test, y_test, batch_size=2048,
                                                          verbose=0)[1]
    features, test_features = enc.predict(x, batch_size=2048), enc.predict(x_test,
                                                                           batch_size=2048)
    # Standardised codes (the labelled set's mean and spread) suit the hinge's margin of 1.
    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-6
    fl.manual_seed(seed)
    svm = linear_svm(features.shape[1])
    svm.fit((features - mean) / scale, np.eye(10, dtype=np.float32)[y], epochs=epochs,
            batch_size=batch, verbose=0)
    scores = svm.predict((test_features - mean) / scale, batch_size=2048)
    out["(b) pre-trained features + linear SVM"] = float(np.mean(scores.argmax(1) == y_test))
    fl.manual_seed(seed)
    tuned = classifier(pretrained=enc)
    tuned.fit(x, y, epochs=epochs, batch_size=batch, verbose=0)
    out["(c) pre-trained, then fine-tuned"] = tuned.evaluate(x_test, y_test, batch_size=2048,
                                                             verbose=0)[1]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--unlabelled", type=int, default=20000)
    parser.add_argument("--pretrain-epochs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=600, help="gradient steps per protocol")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--plots", default=None, help="write PNG pictures to this directory")
    args = parser.parse_args(argv)
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    x_train = x_train.reshape(-1, 784).astype(np.float32) / 255
    x_test = x_test.reshape(-1, 784).astype(np.float32) / 255
    y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
    start = time.perf_counter()
    # The autoencoder sees only images, never a label: the last unlabelled images of the set.
    enc = pretrain_autoencoder(x_train[-args.unlabelled:], args.pretrain_epochs, seed=0)
    table, spread = {}, {}
    for n in args.labels:
        runs = [run(x_train, y_train, x_test, y_test, enc, n, args.steps, seed)
                for seed in range(args.seeds)]
        table[n] = {name: float(np.mean([r[name] for r in runs])) for name in runs[0]}
        spread[n] = {name: float(np.std([r[name] for r in runs])) for name in runs[0]}
    print(f"MNIST test accuracy, mean of {args.seeds} draws of the labelled images "
          f"({args.steps} gradient steps each; autoencoder: {args.unlabelled} unlabelled "
          f"images, {args.pretrain_epochs} epochs)")
    names = list(next(iter(table.values())))
    print(f"{'protocol':42s}" + "".join(f"{n:>10d} labels" for n in table))
    for name in names:
        print(f"{name:42s}" + "".join(f"{table[n][name]:17.4f}" for n in table))
    print(f"({time.perf_counter() - start:.0f} s)")
    if args.plots:
        print(f"wrote {plot(table, spread, args, args.plots)}")
    return table


def plot(table, spread, args, folder):
    """The table as a grouped bar chart: one group per label count, one bar per protocol."""
    spec = importlib.util.spec_from_file_location(  # examples/_plots.py, beside this file
        "_plots", os.path.join(os.path.dirname(os.path.abspath(__file__)), "_plots.py"))
    plots = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plots)
    names = list(next(iter(table.values())))
    path = plots.path(folder, "training_protocols.png")
    plots.grouped_bars(
        [f"{n} labels" for n in table], {name: [table[n][name] for n in table] for name in names},
        errors={name: [spread[n][name] for n in table] for name in names} if args.seeds > 1
        else None,
        title=f"MNIST test accuracy, mean of {args.seeds} draws of the labels "
              f"({args.steps} steps each;\nautoencoder: {args.unlabelled} unlabelled images, "
              f"{args.pretrain_epochs} epochs)", to_file=path)
    return path


if __name__ == "__main__":
    main()
