"""Row-by-row MNIST with an LSTM: each image is a sequence of 28 rows of 28 pixels.

    FUNDL_DATA_DIR=/work/shared/data python examples/mnist_lstm.py [--epochs 12] [--plots DIR]

The LSTM reads one row per time step and the digit is read off its last state
(LSTM(128) -> Dense(10, softmax)), Adam with gradient-norm clipping and a cosine-decayed
learning rate. It shows that a
recurrent net can carry information across 28 steps: the first rows of a "7" matter as
much as the last ones. It reaches at least 98.5 % test accuracy (README has the
measured figure and time). With ``--plots DIR`` it writes the training curves and the test
confusion matrix as PNGs; ``--limit N`` trains on the first N training images and tests on the
first N test images (a quick run).
"""
import argparse
import os
import time

import numpy as np

import fundl as fl
from fundl.datasets import mnist
from fundl.layers import LSTM, Dense
from fundl.models import Sequential


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None,
                        help="train on the first N training images and test on the first N "
                             "test images (a quick run)")
    parser.add_argument("--plots", default=None, help="write PNG pictures to this directory")
    parser.add_argument("--save", default=None, help="save the trained model to this file")
    args = parser.parse_args(argv)
    fl.manual_seed(args.seed)

    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    x_train = x_train.astype(np.float32) / 255  # (60000, 28, 28): 28 steps of 28 pixels
    x_test = x_test.astype(np.float32) / 255
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
        x_test, y_test = x_test[:args.limit], y_test[:args.limit]

    model = Sequential([
        LSTM(args.units, input_shape=(28, 28)),
        Dense(10, activation="softmax"),
    ])
    model.summary()
    # cosine decay to 1 % of the rate by the last step: the final epochs settle instead of
    # bouncing around the optimum
    steps = args.epochs * -(-len(x_train) // args.batch_size)
    schedule = fl.optimizers.schedules.CosineDecay(args.learning_rate, steps, alpha=0.01)
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=fl.optimizers.Adam(schedule, clipnorm=1.0), metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                        verbose=2, validation_data=(x_test, y_test))
    elapsed = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
    print(f"Test loss: {loss:.4f}")
    print(f"Test accuracy: {accuracy:.4f}")
    print(f"Training time: {elapsed:.0f} s ({elapsed / args.epochs:.1f} s per epoch)")
    if args.plots:
        paths = [os.path.join(args.plots, "mnist_lstm_history.png"),
                 os.path.join(args.plots, "mnist_lstm_confusion.png")]
        fl.viz.plot_history(history, to_file=paths[0])
        fl.viz.plot_confusion_matrix(y_test, model.predict(x_test, batch_size=1000),
                                     to_file=paths[1])
        for path in paths:
            print(f"wrote {path}")
    if args.save:
        model.save(args.save)
        print(f"saved to {args.save}")
    return accuracy


if __name__ == "__main__":
    main()
