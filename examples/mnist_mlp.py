"""MNIST with a multilayer perceptron: 784-512-512-10 with dropout, RMSprop, 20 epochs.

    FUNDL_DATA_DIR=../shared/data python examples/mnist_mlp.py [--epochs 20]

The classic Keras example, written with fundl's Keras-style API; it reaches about 98.3 %
test accuracy (the README has the measured figure).
"""
import argparse

import numpy as np

import fundl as fl
from fundl.datasets import mnist
from fundl.layers import Dense, Dropout
from fundl.models import Sequential


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, help="save the trained model to this file")
    args = parser.parse_args()
    fl.manual_seed(args.seed)

    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    x_train = x_train.reshape(-1, 784).astype(np.float32) / 255
    x_test = x_test.reshape(-1, 784).astype(np.float32) / 255
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
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=2,
              validation_data=(x_test, y_test))
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=1024, verbose=0)
    print(f"Test loss: {loss:.4f}")
    print(f"Test accuracy: {accuracy:.4f}")
    if args.save:
        model.save(args.save)
        print(f"saved to {args.save}")


if __name__ == "__main__":
    main()
