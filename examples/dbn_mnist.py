"""A deep belief network on MNIST with few labels: pre-trained vs random initial weights.

    FUNDL_DATA_DIR=../shared/data python examples/dbn_mnist.py [--unlabelled 10000]
        [--labelled 1000] [--epochs 30] [--hidden 500 500]

The Hinton 2006 story, measured: fundl.energy.DBN pre-trains a stack of RBMs greedily on
--unlabelled binarised training images (no labels used), then DBN.to_model(10) unrolls it into
a Sequential of sigmoid Dense layers plus a softmax output, which is fine-tuned on only
--labelled labelled images. The same network from random (Glorot) weights gets the same
fine-tuning budget (optimizer, epochs, batch size, data). Both are scored on the 10,000 test
images.
"""
import argparse
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
    return float(accuracy), history.history["loss"]


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
    acc_dbn, loss_dbn = fine_tune(dbn.to_model(10), labelled_x, labelled_y, xt, yt, args)

    fl.manual_seed(args.seed)
    layers = [Dense(h, activation="sigmoid", **({"input_dim": 784} if i == 0 else {}))
              for i, h in enumerate(args.hidden)] + [Dense(10, activation="softmax")]
    acc_random, loss_random = fine_tune(Sequential(layers), labelled_x, labelled_y, xt, yt, args)
    print(f"fine-tuned on {args.labelled} labels for {args.epochs} epochs: test accuracy "
          f"DBN-initialised {acc_dbn:.4f}, random-initialised {acc_random:.4f}")
    return {"dbn_accuracy": acc_dbn, "random_accuracy": acc_random, "dbn_loss": loss_dbn,
            "random_loss": loss_random, "pretrain_time": pretrain_time}


if __name__ == "__main__":
    main()
