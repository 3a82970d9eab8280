"""MNIST with a multilayer perceptron: 784-512-512-10 with dropout, RMSprop, 20 epochs.

    FUNDL_DATA_DIR=../shared/data python examples/mnist_mlp.py [--epochs 20] [--plots DIR]

The classic Keras example, written with fundl's Keras-style API; it reaches about 98.3 %
test accuracy (the README has the measured figure). With ``--plots DIR`` it writes the
training curves, the first layer's weights as 28x28 images (what each hidden unit looks for)
and the test confusion matrix as PNGs; ``--limit N`` trains on the first N images (a quick run).
"""
import argparse
import os

import numpy as np

import fundl as fl
from fundl.datasets import mnist
from fundl.layers import Dense, Dropout
from fundl.models import Sequential


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None,
                        help="train on the first N training images and test on the first N "
                             "test images (a quick run)")
    parser.add_argument("--plots", default=None, help="write PNG pictures to this directory")
    parser.add_argument("--save", default=None, help="save the trained model to this file")
    args = parser.parse_args(argv)
    fl.manual_seed(args.seed)

    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    x_train = x_train.reshape(-1, 784).astype(np.float32) / 255
    x_test = x_test.reshape(-1, 784).astype(np.float32) / 255
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
        x_test, y_test = x_test[:args.limit], y_test[:args.limit]
    y_train = np.eye(10, dtype=np.float32)[y_train]
    y_test = np.eye(10, dtype=np.float32)[y_test]

    model = Sequential([
        Dense(512, activation="relu", input_shape=(784,)),
        Dropout(0.2),
        Dense(512, activation="relu"),
        Dropout(0.2),
        Dense(10, activation="softmax"),
    ])
    model.summary()
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                        verbose=2, validation_data=(x_test, y_test))
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=1024, verbose=0)
    print(f"Test loss: {loss:.4f}")
    print(f"Test accuracy: {accuracy:.4f}")
    if args.plots:
        for path in plot(model, history, x_test, y_test, args.plots):
            print(f"wrote {path}")
    if args.save:
        model.save(args.save)
        print(f"saved to {args.save}")
    return accuracy


def plot(model, history, x_test, y_test, folder):
    """The pictures of ``--plots``: curves, first-layer weights, confusion matrix (paths)."""
    paths = [os.path.join(folder, name) for name in
             ("mnist_mlp_history.png", "mnist_mlp_weights.png", "mnist_mlp_confusion.png")]
    fl.viz.plot_history(history, to_file=paths[0])
    # each of the first 64 hidden units' 784 incoming weights, as the image it responds to
    fl.viz.plot_filters(model.layers[0], shape=(28, 28), max_filters=64,
                        to_file=paths[1])
    predicted = model.predict(x_test, batch_size=1024)
    fig = fl.viz.plot_confusion_matrix(y_test, predicted, to_file=paths[2])
    cm = fig.confusion_matrix
    print(f"confusion matrix: {cm.trace()} of {cm.sum()} test digits on the diagonal")
    return paths


if __name__ == "__main__":
    main()
