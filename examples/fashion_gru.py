"""Fashion-MNIST with a GRU reading each image row by row (and bidirectionally, if asked).

    FUNDL_DATA_DIR=/work/shared/data python examples/fashion_gru.py [--epochs 10] [--bidirectional]
        [--plots DIR] [--limit N]

Each 28x28 image is a sequence of 28 rows; GRU(128) -> Dense(10, softmax), Adam with a
cosine-decayed learning rate. With ``--bidirectional`` a second GRU reads the rows bottom-up
and the two final states are concatenated. Prints the test accuracy and the accuracy of each
class (README has the measured figures). With ``--plots DIR`` it writes the training curves and
the test confusion matrix with the class names as PNGs; ``--limit N`` trains on the first N
training images and tests on the first N test images (a quick run).
"""
import argparse
import os
import time

import numpy as np

import fundl as fl
from fundl.datasets import fashion_mnist
from fundl.layers import GRU, Bidirectional, Dense
from fundl.models import Sequential


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--bidirectional", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None,
                        help="train on the first N training images and test on the first N "
                             "test images (a quick run)")
    parser.add_argument("--plots", default=None, help="write PNG pictures to this directory")
    args = parser.parse_args(argv)
    fl.manual_seed(args.seed)

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    x_train = x_train.astype(np.float32) / 255
    x_test = x_test.astype(np.float32) / 255
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
        x_test, y_test = x_test[:args.limit], y_test[:args.limit]

    # reset_after=True (the default): the GRU of Keras 3 and PyTorch
    model = Sequential([
        Bidirectional(GRU(args.units), input_shape=(28, 28)) if args.bidirectional
        else GRU(args.units, input_shape=(28, 28)),
        Dense(10, activation="softmax"),
    ])
    model.summary()
    steps = args.epochs * -(-len(x_train) // args.batch_size)
    schedule = fl.optimizers.schedules.CosineDecay(1e-3, steps, alpha=0.01)
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
    predicted = model.predict(x_test, batch_size=1000).argmax(axis=1)
    for k, name in enumerate(fashion_mnist.CLASS_NAMES):
        of_class = y_test == k
        print(f"  {name:<12s} {np.mean(predicted[of_class] == k):.3f}")
    if args.plots:
        paths = [os.path.join(args.plots, "fashion_gru_history.png"),
                 os.path.join(args.plots, "fashion_gru_confusion.png")]
        fl.viz.plot_history(history, to_file=paths[0])
        fl.viz.plot_confusion_matrix(y_test, predicted, labels=list(range(10)),
                                     display_labels=fashion_mnist.CLASS_NAMES, to_file=paths[1])
        for path in paths:
            print(f"wrote {path}")
    return accuracy


if __name__ == "__main__":
    main()
