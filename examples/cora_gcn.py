"""Semi-supervised node classification on Cora or Citeseer with Kipf & Welling's 2-layer GCN.

    FUNDL_DATA_DIR=../shared/data python examples/cora_gcn.py [--dataset citeseer]
        [--epochs 200] [--seed 0] [--seeds 10] [--nodewise] [--plots DIR]

``--seeds N`` trains with seeds 0..N-1 and prints the mean and spread of the test accuracy
(the paper: Cora 81.5 %, Citeseer 70.3 %). ``--nodewise`` uses the lecture's node-wise form
instead: a weight W0 for each node's own features and W1 for its neighbours'
(``GraphConv(self_kernel=True)`` over ``normalized_adjacency(..., self_loops=False)``).

The settings of the paper (ICLR 2017): 16 hidden units, ReLU, dropout 0.5 on the inputs of
both layers, L2 5e-4 on the first layer's weights, Adam with learning rate 0.01, 200 epochs,
full batch, row-normalised features; the paper reports 81.5 % test accuracy. The graph is one
batch, and the loss only sees the 140 labelled training nodes, so this is a plain training
loop rather than ``fit``. (Kipf's code also stops early when the validation loss has not
improved for 10 epochs; with these settings that rarely triggers, and it is left out.)

With ``--plots DIR`` it writes the loss and the train/validation accuracy per epoch, and a 2-D
view of what the first layer learned: the 16 hidden features of every node (ReLU output,
without dropout) projected on their first two principal components (``fundl.decomposition.PCA``),
coloured by the node's class (the run of ``--seed``, or of the first seed of ``--seeds``).
"""
import argparse
import importlib.util
import os
import time

import numpy as np

import fundl as fl
from fundl.datasets import planetoid
from fundl.layers import Dropout, GraphConv
from fundl.optimizers import Adam
from fundl.regularizers import L2


def accuracy(logits, y, index):
    return float(np.mean(logits[index].argmax(axis=1) == y[index]))


def train(g, args, seed):
    """One run: returns (train, val, test accuracy, seconds, pictures).

    ``pictures`` is None, or with ``args.plots`` a dict: ``history`` (loss and train/val
    accuracy per epoch) and ``hidden`` (the first layer's output for every node, eval mode).
    """
    fl.manual_seed(seed)
    # Row-normalise the bag-of-words features (each row sums to 1), as Kipf's preprocessing.
    rowsum = g.x.sum(axis=1, keepdims=True)
    x = fl.tensor(g.x / np.where(rowsum > 0, rowsum, 1))
    adjacency = fl.normalized_adjacency(g.edges, g.x.shape[0], self_loops=not args.nodewise)

    # Kipf's loss adds 5e-4 * tf.nn.l2_loss(w) = 5e-4 * sum(w**2) / 2, i.e. L2(2.5e-4) here.
    # His GraphConvolution layers have no bias.
    drop1, drop2 = Dropout(0.5), Dropout(0.5)
    gc1 = GraphConv(16, activation="relu", use_bias=False, kernel_regularizer=L2(5e-4 / 2),
                    self_kernel=args.nodewise)
    gc2 = GraphConv(g.num_classes, use_bias=False, self_kernel=args.nodewise)

    def forward(training, hidden=False):
        h = gc1([drop1(x, training=training), adjacency])
        return h if hidden else gc2([drop2(h, training=training), adjacency])

    forward(False)  # build the weights
    weights = gc1.trainable_weights + gc2.trainable_weights
    optimizer = Adam(learning_rate=0.01)
    train_y = g.y[g.train_index]
    record = bool(getattr(args, "plots", None))
    history = {"loss": [], "accuracy": [], "val_accuracy": []}
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        logits = forward(True)
        loss = fl.softmax_cross_entropy(logits[g.train_index], train_y).mean()
        loss = loss + sum(gc1.losses)
        for w in weights:
            w.grad = None
        loss.backward()
        optimizer.apply([w.grad for w in weights], weights)
        if record:  # one more forward pass per epoch, only for the pictures
            with fl.no_grad():
                out = forward(False).numpy()
            history["loss"].append(float(loss.item()))
            history["accuracy"].append(accuracy(out, g.y, g.train_index))
            history["val_accuracy"].append(accuracy(out, g.y, g.val_index))
        if args.verbose and (epoch % 20 == 0 or epoch == 1):
            with fl.no_grad():
                out = forward(False).numpy()
            print(f"epoch {epoch:3d}  loss {float(loss.item()):.4f}  "
                  f"train {accuracy(out, g.y, g.train_index):.3f}  "
                  f"val {accuracy(out, g.y, g.val_index):.3f}")
    seconds = time.perf_counter() - start
    with fl.no_grad():
        out = forward(False).numpy()
        pictures = {"history": history, "hidden": forward(False, hidden=True).numpy()} \
            if record else None
    return (accuracy(out, g.y, g.train_index), accuracy(out, g.y, g.val_index),
            accuracy(out, g.y, g.test_index), seconds, pictures)


def plot(g, dataset, pictures, test_acc, folder):
    """The pictures of ``--plots``: curves per epoch and a PCA view of the hidden features."""
    spec = importlib.util.spec_from_file_location(  # examples/_plots.py, beside this file
        "_plots", os.path.join(os.path.dirname(os.path.abspath(__file__)), "_plots.py"))
    plots = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plots)
    paths = [plots.path(folder, f"cora_gcn_{dataset}_history.png"),
             plots.path(folder, f"cora_gcn_{dataset}_hidden_pca.png")]
    fl.viz.plot_history(pictures["history"], to_file=paths[0])
    pca = fl.decomposition.PCA(n_components=2)
    points = pca.fit_transform(pictures["hidden"].astype(np.float64))
    explained = 100 * float(np.sum(pca.explained_variance_ratio_))
    plots.scatter_classes(
        points, g.y, to_file=paths[1],
        title=f"{dataset}: the GCN's 16 hidden features of all {len(g.y)} nodes (test "
              f"accuracy {100 * test_acc:.1f} %)\nPCA, 2 components: {explained:.0f} % of the "
              f"variance (axes at the 0.5-99.5th percentiles)")
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("cora", "citeseer"), default="cora")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="the seed of a single run")
    parser.add_argument("--seeds", type=int, default=None,
                        help="run seeds 0..N-1 and report the mean and spread")
    parser.add_argument("--nodewise", action="store_true",
                        help="the node-wise form: separate self (W0) and neighbour (W1) weights")
    parser.add_argument("--plots", default=None, help="write PNG pictures to this directory")
    args = parser.parse_args(argv)
    g = planetoid.load_data(args.dataset)
    seeds = list(range(args.seeds)) if args.seeds else [args.seed]
    args.verbose = len(seeds) == 1
    tests = []
    for seed in seeds:
        train_acc, val_acc, test_acc, seconds, pictures = train(g, args, seed)
        tests.append(test_acc)
        print(f"{args.dataset} seed {seed}: train accuracy {train_acc:.4f}, val accuracy "
              f"{val_acc:.4f}, test accuracy {test_acc:.4f} ({args.epochs} epochs in "
              f"{seconds:.1f} s)")
        if pictures is not None:
            for path in plot(g, args.dataset, pictures, test_acc, args.plots):
                print(f"wrote {path}")
            args.plots = None  # the first seed's run only
    if len(seeds) > 1:
        tests = np.array(tests) * 100
        print(f"{args.dataset}: test accuracy {tests.mean():.1f} +- {tests.std():.1f} % over "
              f"{len(seeds)} seeds (min {tests.min():.1f}, max {tests.max():.1f})")
    return tests


if __name__ == "__main__":
    main()
