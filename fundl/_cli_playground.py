"""``fundl playground``: train small networks on 2-D data in the browser (TF-Playground style).

A local HTTP server (the standard library's ``http.server``, nothing to install) serves one
self-contained page (inline CSS and JavaScript, works offline) and a small JSON API that builds
and trains fundl models. The page picks a dataset of :mod:`fundl.datasets.synthetic`, the input
features (x, y, x², y², xy, sin(πx), sin(πy)), a multilayer perceptron with optional L1/L2
regularisation, and the share of points kept for testing; then it asks the server for a few
epochs at a time and redraws the data over a heat map of the predicted class probabilities
(or the predicted class alone, "discretised"), each hidden neuron's output as a small heat map,
the training and test loss curves and the accuracies.

    $ fundl playground                  # http://127.0.0.1:8765/ opens in the browser
    $ fundl playground --port 0 --no-browser

The API (every body and answer is JSON; a bad input answers 400 with ``{"error": "..."}``):

- ``POST /api/new``: a dataset and a network (see :data:`NEW_FIELDS` for the fields, their
  defaults and limits) -> ``{"session", "seq", "spec", "x", "y", "n_train", "classes",
  "extent", "grid_size", "grid", "neuron_grid", "neurons", "weights", "parameters"}``: a
  session id; the
  ``seq`` the request carried (the page numbers its requests and keeps only the answer to its
  latest, so quick changes of several controls cannot leave it showing one network while
  another trains); ``spec``, the validated request (every field, defaults filled) that the
  session's network was built from; the points (n, 2) and labels (n,), the first ``n_train``
  of them the training set and the rest the test set; the square ``[xmin, xmax, ymin, ymax]``
  the grids cover; the untrained model's grid, neuron maps and weights.
- ``POST /api/train``: ``{"session", "epochs"}`` -> ``{"session", "spec", "epoch", "loss",
  "train_loss", "test_loss", "accuracy", "test_accuracy", "grid", "neurons", "weights",
  "diverged"}``:
  the session trained and its spec, the epochs trained so far, the training loss of each epoch
  of this call (regularisation included), the cross-entropy and accuracy on the training and
  on the test points after it (without regularisation, as the TensorFlow Playground shows
  them; the test values are null when there are no test points), and the grids.
- ``GET /``: the page.

``grid`` is nested lists of shape (grid_size, grid_size, classes), probabilities rounded to 3
decimals; row 0 is the top of the picture (largest y), column 0 the left (smallest x), each
value taken at the centre of its cell. ``neurons[l][u]`` is the output of unit ``u`` of hidden
layer ``l`` on a coarser (neuron_grid, neuron_grid) grid of the same square, flattened row by
row. ``weights[l]`` is layer ``l``'s kernel (inputs x units, the output layer last), rounded
to 3 decimals: the page draws them as the lines between the neurons. When training diverges,
non-finite numbers become ``null`` and ``diverged`` is true.

Exit codes: 0 stopped with Ctrl-C; 1 the server could not start (port taken, bad host).
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import secrets
import sys
import threading
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATASETS = ("spiral", "circles", "xor", "gaussians", "moons", "ellipses")
# Datasets whose generator takes the number of classes (spiral arms, Gaussian blobs).
MULTICLASS = {"spiral": "classes", "gaussians": "centers"}
ACTIVATIONS = ("relu", "tanh", "sigmoid")
OPTIMIZERS = ("sgd", "adam")
REGULARIZATIONS = ("none", "l1", "l2")
# Input features computed from a point (x, y): name -> formula shown on the page. The data
# lie in about [-1.5, 1.5], so the sines take pi*x: sin(x) would be nearly linear there.
FEATURES = {"x": "x", "y": "y", "x2": "x²", "y2": "y²", "xy": "xy", "sinx": "sin(πx)",
            "siny": "sin(πy)"}
GRID_SIZE = 50
NEURON_GRID = 16
MAX_SESSIONS = 16
MAX_BODY_BYTES = 64 * 1024
MAX_LAYERS = 6
MAX_WIDTH = 64
MAX_EPOCHS = 200
# Gradient steps one /api/train call may take (epochs * batches per epoch): a call holds the
# compute lock, so this bounds how long the page (and any other tab) waits.
MAX_STEPS_PER_CALL = 20000

# Fields of POST /api/new: name -> (default, description of what is allowed).
NEW_FIELDS = {
    "dataset": ("spiral", "one of " + ", ".join(DATASETS)),
    "samples": (300, "an integer from 10 to 2000"),
    "noise": (0.1, "a number from 0 to 1"),
    "classes": (2, "an integer from 2 to 6, for spiral and gaussians only"),
    "seed": (0, "an integer from 0 to 2**31 - 1"),
    "hidden": ("8,8", f"at most {MAX_LAYERS} layer widths, each an integer from 1 to "
                      f"{MAX_WIDTH}, as a list or a comma-separated string (empty for none)"),
    "activation": ("tanh", "one of " + ", ".join(ACTIVATIONS)),
    "optimizer": ("adam", "one of " + ", ".join(OPTIMIZERS)),
    "learning_rate": (0.03, "a number > 0 and <= 10"),
    "batch_size": (32, "an integer from 1 to 2000"),
    "features": ("x,y", "a non-empty list of distinct names from " + ", ".join(FEATURES)
                        + ", as a list or a comma-separated string"),
    "regularization": ("none", "one of " + ", ".join(REGULARIZATIONS)),
    "regularization_rate": (0.0, "a number from 0 to 10"),
    "train_fraction": (0.5, "a number from 0.1 to 0.9 (the rest of the points are the test "
                            "set)"),
    "seq": (0, "an integer from 0 to 2**53 (echoed in the answer)"),
}
TRAIN_FIELDS = {
    "session": (None, "the id /api/new returned"),
    "epochs": (5, f"an integer from 1 to {MAX_EPOCHS}"),
}

# fundl's random generator is process-wide and a model is not meant to train in two threads
# at once, so model work from the server's threads runs one call at a time.
_COMPUTE_LOCK = threading.Lock()


class InputError(ValueError):
    """A request the API refuses; the message says what was wrong and what is allowed."""


class SessionNotFound(InputError):
    """An unknown or expired session id (answered 404)."""


# --------------------------------------------------------------------------- validation

def _show(value, limit=60):
    """``value`` as JSON for a message, cut short: the client may send anything."""
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _integer(body, name, fields, low, high):
    value = body.get(name, fields[name][0])
    # bool is an int subclass: true/false are not numbers here.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"{name} must be {fields[name][1]}, got {_show(value)}.")
    return value


def _number(body, name, fields, low, high, low_open=False):
    value = body.get(name, fields[name][0])
    ok = (not isinstance(value, bool) and isinstance(value, (int, float))
          and math.isfinite(value) and value <= high
          and (value > low if low_open else value >= low))
    if not ok:
        raise InputError(f"{name} must be {fields[name][1]}, got {_show(value)}.")
    return float(value)


def _choice(body, name, fields, allowed):
    value = body.get(name, fields[name][0])
    if value not in allowed:  # a list or dict is never in a tuple of str
        raise InputError(f"unknown {name} {_show(value)}; {name} must be {fields[name][1]}.")
    return value


def _widths(body):
    """The hidden layer widths: a list of ints or a string such as ``"8, 8"``."""
    value = body.get("hidden", NEW_FIELDS["hidden"][0])
    allowed = NEW_FIELDS["hidden"][1]
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        if parts == [""]:
            parts = []
        widths = []
        for part in parts:
            # ASCII digits only ("²" is a digit to str.isdigit), and few: int() of thousands
            # of digits raises.
            if not (part.isascii() and part.isdigit() and len(part) <= 6):
                raise InputError(f"hidden must be {allowed}; {_show(part)} in "
                                 f"{_show(value)} is not a positive integer.")
            widths.append(int(part))
    elif isinstance(value, list):
        widths = value
    else:
        raise InputError(f"hidden must be {allowed}, got {_show(value)}.")
    if len(widths) > MAX_LAYERS:
        raise InputError(f"hidden has {len(widths)} layers; it must be {allowed}.")
    for w in widths:
        if isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= MAX_WIDTH:
            raise InputError(f"hidden must be {allowed}; got width {_show(w)}.")
    return widths


def _features(body):
    """The input features: a list of names or a string such as ``"x, y, xy"``."""
    value = body.get("features", NEW_FIELDS["features"][0])
    allowed = NEW_FIELDS["features"][1]
    if isinstance(value, str):
        names = [p.strip() for p in value.split(",") if p.strip()]
    elif isinstance(value, list):
        names = value
    else:
        raise InputError(f"features must be {allowed}, got {_show(value)}.")
    if not names:
        raise InputError(f"features is empty; it must be {allowed}.")
    for name in names:
        if not isinstance(name, str) or name not in FEATURES:
            raise InputError(f"unknown feature {_show(name)}; features must be {allowed}.")
    if len(set(names)) != len(names):
        raise InputError(f"features lists a name twice in {_show(value)}; it must be "
                         f"{allowed}.")
    return list(names)


def feature_columns(points, features):
    """The input features of ``points`` (n, 2): an (n, len(features)) float32 array."""
    import numpy as np

    x, y = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    formulas = {"x": lambda: x, "y": lambda: y, "x2": lambda: x * x, "y2": lambda: y * y,
                "xy": lambda: x * y, "sinx": lambda: np.sin(np.pi * x),
                "siny": lambda: np.sin(np.pi * y)}
    return np.stack([formulas[name]() for name in features], axis=1).astype(np.float32)


def _check_fields(body, fields):
    if not isinstance(body, dict):
        raise InputError(f"the request body must be a JSON object, got {type(body).__name__}.")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise InputError(f"unknown field {', '.join(unknown)}; allowed fields: "
                         f"{', '.join(fields)}.")


def parse_new(body) -> dict:
    """Validate a POST /api/new body; returns every field of :data:`NEW_FIELDS`, defaults filled.

    Raises:
        InputError: naming the first bad field, what it must be and what it was.
    """
    _check_fields(body, NEW_FIELDS)
    spec = {
        "dataset": _choice(body, "dataset", NEW_FIELDS, DATASETS),
        "samples": _integer(body, "samples", NEW_FIELDS, 10, 2000),
        "noise": _number(body, "noise", NEW_FIELDS, 0.0, 1.0),
        "classes": _integer(body, "classes", NEW_FIELDS, 2, 6),
        "seed": _integer(body, "seed", NEW_FIELDS, 0, 2**31 - 1),
        "hidden": _widths(body),
        "activation": _choice(body, "activation", NEW_FIELDS, ACTIVATIONS),
        "optimizer": _choice(body, "optimizer", NEW_FIELDS, OPTIMIZERS),
        "learning_rate": _number(body, "learning_rate", NEW_FIELDS, 0.0, 10.0, low_open=True),
        "batch_size": _integer(body, "batch_size", NEW_FIELDS, 1, 2000),
        "features": _features(body),
        "regularization": _choice(body, "regularization", NEW_FIELDS, REGULARIZATIONS),
        "regularization_rate": _number(body, "regularization_rate", NEW_FIELDS, 0.0, 10.0),
        "train_fraction": _number(body, "train_fraction", NEW_FIELDS, 0.1, 0.9),
        "seq": _integer(body, "seq", NEW_FIELDS, 0, 2**53),
    }
    if spec["classes"] != 2 and spec["dataset"] not in MULTICLASS:
        raise InputError(f"{spec['dataset']} has 2 classes; classes can be changed only for "
                         f"{' and '.join(MULTICLASS)}, got classes={spec['classes']}.")
    return spec


# --------------------------------------------------------------------------- sessions

class _Session:
    """One dataset, its split and its model.

    ``x`` (n, 2) float32 and ``y`` (n,) int64 hold the training points first (``n_train``),
    then the test points; ``grid_points`` (g*g, 2) and ``neuron_points`` the grids' centres.
    """

    def __init__(self, spec):
        import numpy as np

        import fundl as fl
        from . import optimizers, regularizers
        from .datasets import synthetic
        from .layers import Dense, Input
        from .models import Sequential

        self.spec = spec
        kwargs = {}
        if spec["dataset"] in MULTICLASS:
            kwargs[MULTICLASS[spec["dataset"]]] = spec["classes"]
        generate = getattr(synthetic, spec["dataset"])
        x, y = generate(spec["samples"], noise=spec["noise"], seed=spec["seed"], **kwargs)
        # A seeded shuffle, then the first n_train points train: the same spec, the same split.
        order = np.random.default_rng(spec["seed"]).permutation(len(x))
        self.x, self.y = x[order], y[order]
        self.n_train = min(len(x) - 1, max(1, round(len(x) * spec["train_fraction"])))
        self.features = spec["features"]
        self.inputs = feature_columns(self.x, self.features)
        self.classes = spec["classes"]
        self.batch_size = spec["batch_size"]
        self.epoch = 0

        # A square around the data (so circles look round), padded by 10%.
        low, high = self.x.min(axis=0), self.x.max(axis=0)
        centre, half = (low + high) / 2, max(float((high - low).max()) / 2, 1e-3) * 1.1
        self.extent = [float(centre[0] - half), float(centre[0] + half),
                       float(centre[1] - half), float(centre[1] + half)]
        self.grid_points = self._grid(GRID_SIZE)
        self.neuron_points = self._grid(NEURON_GRID)

        fl.manual_seed(spec["seed"])
        rate = spec["regularization_rate"]
        regularizer = {"none": None, "l1": regularizers.L1, "l2": regularizers.L2}[
            spec["regularization"]]

        def dense(units, activation):
            # TF-Playground style: the penalty is on the weights, not on the biases.
            return Dense(units, activation=activation,
                         kernel_regularizer=regularizer(rate) if regularizer and rate else None)

        layers = [dense(w, spec["activation"]) for w in spec["hidden"]]
        layers.append(dense(self.classes, "softmax"))
        self.model = Sequential([Input(shape=(len(self.features),)), *layers],
                                name="playground")
        optimizer = {"sgd": optimizers.SGD, "adam": optimizers.Adam}[spec["optimizer"]]
        self.model.compile(loss="sparse_categorical_crossentropy",
                           optimizer=optimizer(learning_rate=spec["learning_rate"]),
                           metrics=["accuracy"])

    def _grid(self, size):
        """The centres of a size x size grid over the extent, row 0 at the top, as features."""
        import numpy as np

        step = (self.extent[1] - self.extent[0]) / size
        xs = self.extent[0] + step * (np.arange(size) + 0.5)
        ys = self.extent[3] - step * (np.arange(size) + 0.5)  # row 0 at the top
        gx, gy = np.meshgrid(xs, ys)
        points = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
        return feature_columns(points, self.features)

    def grid(self):
        """The predicted probabilities on the grid, (GRID_SIZE, GRID_SIZE, classes) lists."""
        probs = self.model.predict(self.grid_points, batch_size=len(self.grid_points))
        return _rounded(probs.reshape(GRID_SIZE, GRID_SIZE, self.classes), 3)

    def neurons(self):
        """Each hidden unit's output on the neuron grid: [layer][unit] -> flat lists."""
        from .autograd import no_grad
        from .tensor import Tensor

        maps = []
        h = Tensor(self.neuron_points)
        with no_grad():
            for layer in self.model.layers[:-1]:
                h = layer(h, training=False)
                maps.append(_rounded(h.numpy().T, 3))
        return maps

    def weights(self):
        """Each layer's kernel (inputs, units) as lists, the output layer's last."""
        return [_rounded(layer.kernel.numpy(), 3) for layer in self.model.layers]

    def _scores(self, part):
        """(cross-entropy, accuracy) on the training or test points, None when there are none."""
        import numpy as np

        sl = slice(0, self.n_train) if part == "train" else slice(self.n_train, None)
        x, y = self.inputs[sl], self.y[sl]
        if len(x) == 0:
            return None, None
        probs = self.model.predict(x, batch_size=len(x)).astype(np.float64)
        if not np.isfinite(probs).all():
            return None, None
        picked = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)
        return float(-np.mean(np.log(picked))), float(np.mean(np.argmax(probs, axis=1) == y))

    def train(self, epochs):
        history = self.model.fit(self.inputs[:self.n_train], self.y[:self.n_train],
                                 batch_size=self.batch_size, epochs=epochs, verbose=0)
        self.epoch += epochs
        loss = [float(v) for v in history.history["loss"]]
        train_loss, accuracy = self._scores("train")
        test_loss, test_accuracy = self._scores("test")
        grid = self.grid()
        diverged = not all(math.isfinite(v) for v in loss) or train_loss is None
        return {"spec": self.spec, "epoch": self.epoch, "loss": [_finite(v, 6) for v in loss],
                "train_loss": _finite_or_none(train_loss, 6), "accuracy": accuracy,
                "test_loss": _finite_or_none(test_loss, 6), "test_accuracy": test_accuracy,
                "grid": grid, "neurons": self.neurons(), "weights": self.weights(),
                "diverged": diverged}


def _finite_or_none(value, decimals):
    return None if value is None else _finite(value, decimals)


def _finite(value, decimals):
    return round(value, decimals) if math.isfinite(value) else None


def _rounded(array, decimals):
    """Nested lists of ``array`` rounded, with NaN and infinities as None (JSON null)."""
    import numpy as np

    rounded = np.round(array.astype(np.float64), decimals)
    if np.isfinite(rounded).all():
        return rounded.tolist()
    obj = rounded.astype(object)
    obj[~np.isfinite(rounded)] = None
    return obj.tolist()


class SessionStore:
    """Sessions by id, at most ``limit`` (the oldest dropped first); safe across threads."""

    def __init__(self, limit=MAX_SESSIONS):
        self.limit = limit
        self._sessions = collections.OrderedDict()
        self._lock = threading.Lock()

    def add(self, session) -> str:
        sid = secrets.token_hex(8)
        with self._lock:
            self._sessions[sid] = session
            while len(self._sessions) > self.limit:
                self._sessions.popitem(last=False)
        return sid

    def get(self, sid):
        with self._lock:
            session = self._sessions.get(sid) if isinstance(sid, str) else None
            if session is not None:
                self._sessions.move_to_end(sid)  # in use: dropped last
        if session is None:
            raise SessionNotFound(f"unknown session {_show(sid)}: it never existed or was "
                                  f"dropped (at most {self.limit} are kept); start a new one "
                                  f"with POST /api/new.")
        return session

    def __len__(self):
        with self._lock:
            return len(self._sessions)


# --------------------------------------------------------------------------- API

def api_new(store, body) -> dict:
    """POST /api/new: build a dataset and a model; returns the data and the first grids."""
    spec = parse_new(body)
    with _COMPUTE_LOCK:
        session = _Session(spec)
        grid, neurons = session.grid(), session.neurons()
    sid = store.add(session)
    return {"session": sid, "seq": spec["seq"], "spec": spec, "x": _rounded(session.x, 4),
            "y": session.y.tolist(), "n_train": session.n_train, "classes": session.classes,
            "extent": [round(v, 4) for v in session.extent], "grid_size": GRID_SIZE,
            "grid": grid, "neuron_grid": NEURON_GRID, "neurons": neurons,
            "weights": session.weights(),
            "parameters": int(session.model.count_params())}


def api_train(store, body) -> dict:
    """POST /api/train: ``epochs`` more epochs for ``session``; returns losses, accuracy, grid."""
    _check_fields(body, TRAIN_FIELDS)
    if "session" not in body:
        raise InputError("session is missing: send the id /api/new returned.")
    epochs = _integer(body, "epochs", TRAIN_FIELDS, 1, MAX_EPOCHS)
    session = store.get(body["session"])
    steps = epochs * -(-session.n_train // session.batch_size)
    if steps > MAX_STEPS_PER_CALL:
        raise InputError(f"{epochs} epochs of {session.n_train} training samples in batches of "
                         f"{session.batch_size} are {steps} steps; one call may take at most "
                         f"{MAX_STEPS_PER_CALL}: ask for fewer epochs or use a larger batch size.")
    with _COMPUTE_LOCK:
        answer = session.train(epochs)
    # The answer names its session: the page applies it only to the network it shows.
    return {"session": body["session"], **answer}


_ROUTES = {"/api/new": api_new, "/api/train": api_train}
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


class _Handler(BaseHTTPRequestHandler):
    server_version = "fundl-playground"

    def _send(self, status, body: bytes, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status, obj):
        self._send(status, json.dumps(obj, allow_nan=False).encode(), "application/json")

    def _host_ok(self) -> bool:
        """On a loopback address, answer only requests addressed to a loopback name: a page
        of another site whose name was made to resolve to 127.0.0.1 (DNS rebinding) sends its
        own name in ``Host``."""
        if not getattr(self.server, "loopback", False):
            return True
        host = self.headers.get("Host", "")
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        if name.lower() in _LOOPBACK_NAMES:
            return True
        self._json(HTTPStatus.FORBIDDEN, {"error": f"this playground answers requests to "
                                                   f"localhost only, not to Host {host!r}."})
        return False

    def do_GET(self):
        if not self._host_ok():
            return
        if self.path.split("?")[0] in ("/", "/index.html"):
            self._send(HTTPStatus.OK, PAGE.encode(), "text/html; charset=utf-8")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no page {self.path}; the playground "
                                                       f"is at /."})

    do_HEAD = do_GET

    def do_POST(self):
        if not self._host_ok():
            return
        route = _ROUTES.get(self.path)
        if route is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no endpoint POST {self.path}; the API "
                                                       f"has {', '.join(_ROUTES)}."})
            return
        # Requiring JSON makes a cross-site form post need a CORS preflight, which this server
        # never grants: other web sites cannot drive it.
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                       {"error": "send the body as JSON with Content-Type: application/json."})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True  # the unread body must not be taken for a request
            status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length > 0 else HTTPStatus.BAD_REQUEST
            self._json(status,
                       {"error": f"the body must be 0 to {MAX_BODY_BYTES} bytes with a valid "
                                 f"Content-Length, got {self.headers.get('Content-Length')}."})
            return
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError) as e:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"the body is not valid JSON: {e}."})
            return
        try:
            answer = route(self.server.sessions, body)
        except SessionNotFound as e:
            self._json(HTTPStatus.NOT_FOUND, {"error": str(e)})
        except InputError as e:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(e)})
        except Exception as e:  # a bug: logged here in full, one line to the client
            traceback.print_exc(file=sys.stderr)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR,
                       {"error": f"internal error in {self.path}: {type(e).__name__}: {e}"})
        else:
            self._json(HTTPStatus.OK, answer)

    def log_message(self, format, *args):
        # Training posts several requests a second; only errors are worth a line.
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    def log_error(self, format, *args):
        super().log_message(format, *args)


def make_server(host="127.0.0.1", port=8765, *, verbose=False) -> ThreadingHTTPServer:
    """A playground server bound to ``(host, port)``, not yet serving.

    Call ``serve_forever()`` (in a thread if needed), then ``shutdown()`` and
    ``server_close()``. ``port=0`` picks a free port: read it from ``server.server_address``.
    The server's sessions are ``server.sessions`` (a :class:`SessionStore`).

    Raises:
        OSError: the address cannot be bound (port taken, unknown host).

    Example:
        >>> server = make_server(port=0)
        >>> threading.Thread(target=server.serve_forever, daemon=True).start()
        >>> server.shutdown(); server.server_close()
    """
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True  # Ctrl-C does not wait for open connections
    server.sessions = SessionStore()
    server.verbose = verbose
    server.loopback = host in ("127.0.0.1", "localhost", "::1")
    return server


# --------------------------------------------------------------------------- command

def _port(text):
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0 to 65535, got {text}")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``playground`` subcommand on ``subparsers`` (from ``add_subparsers``).

    Returns:
        The ``playground`` parser; its ``run`` default is :func:`run`.
    """
    playground = subparsers.add_parser(
        "playground", help="train small networks on 2-D data in the browser",
        description="Serve the fundl playground, a page where you pick a 2-D dataset "
                    "(spiral, circles, xor, gaussians, moons, ellipses) and a network, train it "
                    "and watch the decision regions, the loss and the accuracy. Stop with Ctrl-C.",
        epilog="Example: fundl playground --port 8000 --no-browser")
    playground.add_argument("--port", type=_port, default=8765,
                            help="port to listen on, 0 for any free one (default: 8765)")
    playground.add_argument("--host", default="127.0.0.1",
                            help="address to bind (default: 127.0.0.1, this machine only)")
    playground.add_argument("--no-browser", action="store_true",
                            help="do not open the page in the default browser")
    playground.add_argument("--verbose", action="store_true", help="log every request")
    playground.set_defaults(run=run)
    return playground


def run(args) -> int:
    """Serve until Ctrl-C as ``args`` (parsed by the ``playground`` parser) says.

    Returns:
        0 after Ctrl-C, 1 when the server cannot start (reported on stderr).
    """
    import webbrowser

    try:
        server = make_server(args.host, args.port, verbose=args.verbose)
    except OSError as e:
        print(f"fundl playground: cannot listen on {args.host}:{args.port}: {e}. "
              f"Try another --port (0 picks a free one).", file=sys.stderr)
        return 1
    host, port = server.server_address[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    url = f"http://{shown}:{port}/"
    print(f"fundl playground at {url} (Ctrl-C to stop)", flush=True)
    if host not in ("127.0.0.1", "localhost"):
        print(f"fundl playground: listening on {host}: other machines can reach it.",
              file=sys.stderr)
    if not args.no_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nfundl playground stopped.")
    finally:
        server.server_close()
    return 0


PAGE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fundl playground</title>
<link rel="icon" href="data:,">
<style>
  body { font: 14px system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #222; }
  header { background: #283044; color: #fff; padding: 10px 20px; }
  header h1 { font-size: 20px; margin: 0; display: inline; }
  header span { opacity: .7; margin-left: 12px; }
  main { display: flex; flex-wrap: wrap; gap: 16px; padding: 16px; align-items: flex-start; }
  section { background: #fff; border-radius: 6px; padding: 12px 16px;
            box-shadow: 0 1px 3px rgba(0,0,0,.15); }
  h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .05em; color: #667;
       margin: 4px 0 10px; }
  label { display: grid; grid-template-columns: 120px 150px; align-items: center; margin: 5px 0; }
  label.check { display: flex; gap: 6px; }
  input, select { font: inherit; padding: 2px 4px; }
  input[type=range] { padding: 0; width: 100px; vertical-align: middle; }
  .value { color: #556; font-variant-numeric: tabular-nums; }
  .buttons { display: flex; gap: 8px; margin-top: 12px; }
  button { font: inherit; padding: 6px 14px; border: 0; border-radius: 4px; background: #3b6fd6;
           color: #fff; cursor: pointer; }
  button.secondary { background: #8a93a6; }
  button:disabled { opacity: .5; cursor: default; }
  #stats { margin: 8px 0; font-variant-numeric: tabular-nums; line-height: 1.6; }
  #stats b { display: inline-block; min-width: 58px; }
  #error { color: #b00020; max-width: 300px; min-height: 1.2em; white-space: pre-wrap; }
  canvas { display: block; border: 1px solid #ccd; }
  canvas.thumb { width: 32px; height: 32px; image-rendering: pixelated; }
  .features label { display: flex; align-items: center; gap: 8px; margin: 3px 0; }
  #neurons { display: flex; gap: 34px; max-height: 470px; overflow-y: auto;
             position: relative; }
  #neurons .layer { display: flex; flex-direction: column; gap: 4px; align-items: center;
                    position: relative; z-index: 1; }
  #neurons canvas.links { position: absolute; left: 0; top: 0; border: 0; z-index: 0; }
  #neurons .layer span { font-size: 11px; color: #667; }
</style>
</head>
<body>
<header><h1>fundl playground</h1>
  <span>a multilayer perceptron on 2-D data, trained live</span></header>
<main>
  <section>
    <h2>Data</h2>
    <label>Dataset <select id="dataset">
      <option>spiral</option><option>circles</option><option>xor</option>
      <option>gaussians</option><option>moons</option><option>ellipses</option></select></label>
    <label>Points
      <input id="samples" type="number" min="10" max="2000" step="10" value="300"></label>
    <label>Noise <span><input id="noise" type="range" min="0" max="1" step="0.05" value="0.1">
      <span class="value" id="noise_value">0.10</span></span></label>
    <label>Training data <span>
      <input id="train_ratio" type="range" min="10" max="90" step="10" value="50">
      <span class="value" id="train_ratio_value">50%</span></span></label>
    <label>Classes <input id="classes" type="number" min="2" max="6" value="2"></label>
    <label>Seed <input id="seed" type="number" min="0" value="0"></label>
    <label class="check"><input id="show_test" type="checkbox"> Show test data</label>
    <label class="check"><input id="discretize" type="checkbox"> Discretize output</label>
    <h2>Features</h2>
    <div class="features" id="features"></div>
  </section>
  <section>
    <h2>Network</h2>
    <label>Hidden layers
      <input id="hidden" value="8,8" title="widths, e.g. 8,8 (empty for none)"></label>
    <label>Activation <select id="activation">
      <option>tanh</option><option>relu</option><option>sigmoid</option></select></label>
    <label>Optimizer
      <select id="optimizer"><option>adam</option><option>sgd</option></select></label>
    <label>Learning rate
      <input id="learning_rate" type="number" min="0" step="0.001" value="0.03"></label>
    <label>Regularization <select id="regularization">
      <option value="none">none</option><option value="l1">L1</option>
      <option value="l2">L2</option></select></label>
    <label>Regularization rate <select id="regularization_rate">
      <option>0</option><option>0.001</option><option>0.003</option><option>0.01</option>
      <option>0.03</option><option>0.1</option><option>0.3</option><option>1</option>
      <option>3</option><option>10</option></select></label>
    <label>Batch size <input id="batch_size" type="number" min="1" max="2000" value="32"></label>
    <label>Epochs / update <input id="epochs" type="number" min="1" max="200" value="5"></label>
    <div class="buttons">
      <button id="train">Train</button>
      <button id="pause" class="secondary" disabled>Pause</button>
      <button id="reset" class="secondary">Reset</button>
    </div>
    <div id="error"></div>
  </section>
  <section>
    <h2>Neurons and weights</h2>
    <div id="neurons"></div>
  </section>
  <section>
    <h2>Output</h2>
    <div id="stats">epoch <b id="epoch">0</b> parameters <b id="params">-</b><br>
      training loss <b id="loss">-</b> test loss <b id="test_loss">-</b><br>
      training accuracy <b id="accuracy">-</b> test accuracy <b id="test_accuracy">-</b></div>
    <canvas id="plot" width="420" height="420"></canvas>
  </section>
  <section>
    <h2>Loss</h2>
    <canvas id="curve" width="360" height="220"></canvas>
  </section>
</main>
<script>
"use strict";
const COLORS = [[235, 125, 40], [40, 110, 220], [60, 170, 80], [200, 60, 160], [150, 110, 50],
                [90, 90, 90]];
// Input features: id -> [label, formula]; the server computes the same (FEATURES).
const FEATURES = {
  x: ["x", (a, b) => a], y: ["y", (a, b) => b], x2: ["x²", (a, b) => a * a],
  y2: ["y²", (a, b) => b * b], xy: ["xy", (a, b) => a * b],
  sinx: ["sin(πx)", (a, b) => Math.sin(Math.PI * a)],
  siny: ["sin(πy)", (a, b) => Math.sin(Math.PI * b)]};
const DEFAULT_FEATURES = ["x", "y"];
// Controls that define the data or the network: changing one starts afresh (as in the
// TensorFlow Playground). The others (test points, discretize) only redraw.
const RESET_CONTROLS = ["dataset", "samples", "noise", "train_ratio", "classes", "seed",
                        "hidden", "activation", "optimizer", "learning_rate", "regularization",
                        "regularization_rate", "batch_size"];
const $ = (id) => document.getElementById(id);
let state = null;       // the /api/new answer the page shows, plus the loss curves
let running = false;
let runId = 0;          // the training loop allowed to run (see loop)
let newSeq = 0;         // number of the latest /api/new request: answers to older ones are stale
let pending = Promise.resolve();  // the latest reset
let trainCalls = 0;     // /api/train requests out

for (const [id, [label]] of Object.entries(FEATURES)) {
  const row = document.createElement("label");
  row.innerHTML = `<input type="checkbox" id="f_${id}"><canvas class="thumb" id="thumb_${id}"` +
                  ` width="16" height="16"></canvas>${label}`;
  $("features").appendChild(row);
  $("f_" + id).checked = DEFAULT_FEATURES.includes(id);
}

function features() { return Object.keys(FEATURES).filter((id) => $("f_" + id).checked); }

function spec() {
  const num = (id) => Number($(id).value);
  const body = {dataset: $("dataset").value, samples: num("samples"), noise: num("noise"),
                seed: num("seed"), hidden: $("hidden").value, activation: $("activation").value,
                optimizer: $("optimizer").value, learning_rate: num("learning_rate"),
                batch_size: num("batch_size"), features: features(),
                regularization: $("regularization").value,
                regularization_rate: num("regularization_rate"),
                train_fraction: num("train_ratio") / 100};
  if (body.dataset === "spiral" || body.dataset === "gaussians") body.classes = num("classes");
  return body;
}

async function post(path, body) {
  const response = await fetch(path, {method: "POST", body: JSON.stringify(body),
                                      headers: {"Content-Type": "application/json"}});
  let answer;
  try { answer = await response.json(); } catch (e) { answer = {error: response.statusText}; }
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

function showError(message) { $("error").textContent = message || ""; }

function showValues() {
  $("noise_value").textContent = Number($("noise").value).toFixed(2);
  $("train_ratio_value").textContent = $("train_ratio").value + "%";
}

function reset() { pending = startNew(); return pending; }

async function startNew() {
  setRunning(false); runId++;
  // Each request carries its number; only the answer to the latest is shown. Several quick
  // changes send overlapping requests whose answers can come back in any order.
  const seq = ++newSeq;
  $("classes").disabled = !["spiral", "gaussians"].includes($("dataset").value);
  showValues();
  const body = spec();
  body.seq = seq;
  try {
    const answer = await post("/api/new", body);
    if (seq !== newSeq || answer.seq !== seq) return;  // stale: the controls changed since
    state = answer;
    state.epoch = 0; state.losses = []; state.testLosses = [];
    showError("");
    $("epoch").textContent = "0";
    for (const id of ["loss", "test_loss", "accuracy", "test_accuracy"]) $(id).textContent = "-";
    $("params").textContent = state.parameters;
  } catch (e) {
    if (seq !== newSeq) return;
    state = null; showError(e.message);
  }
  drawAll();
}

async function loop(run) {
  // A Pause then Train, or a Reset, while a request is out must not leave two loops running
  // or apply an old session's answer to a new one: each loop owns one run number and one state.
  const mine = state;
  while (running && run === runId && state === mine) {
    let answer;
    trainCalls++;
    try {
      answer = await post("/api/train", {session: mine.session,
                                         epochs: Number($("epochs").value)});
    } catch (e) {
      if (run === runId) showError(e.message);
      break;
    } finally { trainCalls--; }
    // An answer for the network shown is shown even after a Pause (the server did train it);
    // one for a network replaced since, or older than what is shown, is dropped.
    if (state !== mine || answer.session !== mine.session) return;
    if (answer.epoch <= mine.epoch) continue;
    show(answer);
    if (answer.diverged) {
      showError("training diverged: lower the learning rate and reset.");
      break;
    }
  }
  if (run === runId) setRunning(false);
}

function show(answer) {
  state.epoch = answer.epoch; state.grid = answer.grid; state.neurons = answer.neurons;
  state.weights = answer.weights;
  state.losses.push(answer.train_loss); state.testLosses.push(answer.test_loss);
  const fixed = (v, d) => (v === null || v === undefined ? "NaN" : v.toFixed(d));
  const pct = (v) => (v === null || v === undefined ? "-" : (100 * v).toFixed(1) + "%");
  $("epoch").textContent = answer.epoch;
  $("loss").textContent = fixed(answer.train_loss, 4);
  $("test_loss").textContent = state.n_train < state.x.length ? fixed(answer.test_loss, 4) : "-";
  $("accuracy").textContent = pct(answer.accuracy);
  $("test_accuracy").textContent = pct(answer.test_accuracy);
  drawAll();
}

function setRunning(on) {
  running = on;
  $("train").disabled = on; $("pause").disabled = !on;
}

function drawAll() { draw(); drawCurve(); drawNeurons(); drawFeatures(); }

function draw() {
  const canvas = $("plot"), ctx = canvas.getContext("2d"), size = canvas.width;
  ctx.clearRect(0, 0, size, size);
  if (!state) return;
  const g = state.grid_size, cell = size / g, discrete = $("discretize").checked;
  for (let i = 0; i < g; i++) {
    for (let j = 0; j < g; j++) {
      let p = state.grid ? state.grid[i][j] : null;
      let rgb = [255, 255, 255];
      if (p && p.every((v) => v !== null)) {
        if (discrete) {  // the predicted class alone
          const best = p.indexOf(Math.max(...p));
          p = p.map((v, k) => (k === best ? 1 : 0));
        }
        // Mix the class colours by probability, then fade toward white so points stand out.
        rgb = [0, 1, 2].map(
          (c) => p.reduce((s, v, k) => s + v * COLORS[k][c], 0) * 0.55 + 255 * 0.45);
      }
      ctx.fillStyle = `rgb(${rgb[0]|0},${rgb[1]|0},${rgb[2]|0})`;
      ctx.fillRect(Math.floor(j * cell), Math.floor(i * cell), Math.ceil(cell), Math.ceil(cell));
    }
  }
  const [x0, x1, y0, y1] = state.extent, showTest = $("show_test").checked;
  ctx.lineWidth = 1;
  state.x.forEach((pt, n) => {
    const test = n >= state.n_train;
    if (test && !showTest) return;
    const px = (pt[0] - x0) / (x1 - x0) * size, py = (y1 - pt[1]) / (y1 - y0) * size;
    const c = COLORS[state.y[n] % COLORS.length];
    ctx.fillStyle = `rgb(${c[0]},${c[1]},${c[2]})`;
    ctx.strokeStyle = test ? "#222" : "#fff";  // test points: dark rings, as the original
    ctx.beginPath(); ctx.arc(px, py, 3.5, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
  });
}

function drawCurve() {
  const canvas = $("curve"), ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#667"; ctx.font = "11px system-ui";
  const clean = (a) => (state ? a.filter((v) => v !== null && v !== undefined) : []);
  const train = state ? clean(state.losses) : [], test = state ? clean(state.testLosses) : [];
  if (train.length < 1) { ctx.fillText("train to see the loss per update", 10, 20); return; }
  const top = Math.max(...train, ...test), pad = 24;
  ctx.fillText(top.toFixed(3), 2, 12); ctx.fillText("0", 2, h - 4);
  ctx.strokeStyle = "#ccd"; ctx.lineWidth = 1; ctx.setLineDash([]);
  ctx.strokeRect(pad, 4, w - pad - 4, h - 12);
  const line = (values, color, dash) => {
    ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.setLineDash(dash); ctx.beginPath();
    values.forEach((v, k) => {
      const x = pad + (values.length === 1 ? 0 : k / (values.length - 1)) * (w - pad - 4);
      const y = 4 + (1 - v / top) * (h - 12);
      if (k === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  };
  line(train, "#3b6fd6", []);
  if (test.length) line(test, "#eb7d28", [5, 3]);
  ctx.setLineDash([]);
  ctx.fillStyle = "#3b6fd6"; ctx.fillText("training", w - 110, 18);
  if (test.length) { ctx.fillStyle = "#eb7d28"; ctx.fillText("test", w - 50, 18); }
}

// A small heat map: values in [-scale, scale], orange for negative, blue for positive.
function heatmap(canvas, values, g, scale) {
  const ctx = canvas.getContext("2d"), image = ctx.createImageData(g, g);
  for (let k = 0; k < g * g; k++) {
    const v = values[k] === null ? 0 : Math.max(-1, Math.min(1, values[k] / scale));
    const c = v < 0 ? [245, 147, 34] : [8, 119, 189], t = Math.abs(v);
    for (let ch = 0; ch < 3; ch++) image.data[4 * k + ch] = 255 + t * (c[ch] - 255);
    image.data[4 * k + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
}

// A grid of feature values over the data's square, row 0 at the top.
function featureValues(formula, g) {
  const [x0, x1, y0, y1] = state.extent, values = [];
  for (let i = 0; i < g; i++) {
    for (let j = 0; j < g; j++) {
      values.push(formula(x0 + (j + 0.5) * (x1 - x0) / g, y1 - (i + 0.5) * (y1 - y0) / g));
    }
  }
  return values;
}

// The network as in the TensorFlow Playground: the input features, then each hidden layer's
// neurons as heat maps of their output, joined by their weights (blue positive, orange
// negative, thicker and darker when larger).
function drawNeurons() {
  const box = $("neurons"), scrolled = box.scrollTop;  // redrawn each update: keep the view
  box.innerHTML = "";
  if (!state || !state.neurons) return;
  const g = state.neuron_grid, bounded = ["tanh", "sigmoid"].includes(state.spec.activation);
  const columns = [];
  const addColumn = (title, maps, kind, scaleOf, names) => {
    const column = document.createElement("div");
    column.className = "layer";
    column.innerHTML = `<span>${title}</span>`;
    const nodes = maps.map((values, u) => {
      const canvas = document.createElement("canvas");
      canvas.width = g; canvas.height = g; canvas.className = "thumb " + kind;
      canvas.title = names[u];
      heatmap(canvas, values, g, scaleOf(values));
      column.appendChild(canvas);
      return canvas;
    });
    box.appendChild(column);
    columns.push(nodes);
  };
  const peak = (values) => Math.max(1e-6, ...values.map((v) => Math.abs(v || 0)));
  const features = state.spec.features;
  addColumn("inputs", features.map((f) => featureValues(FEATURES[f][1], g)), "input", peak,
            features.map((f) => FEATURES[f][0]));
  state.neurons.forEach((layer, l) => {
    addColumn(`layer ${l + 1}`, layer, "neuron", bounded ? () => 1 : peak,
              layer.map((_, u) => `layer ${l + 1}, unit ${u + 1}`));
  });
  box.scrollTop = scrolled;
  if (!state.weights) return;
  const links = document.createElement("canvas");
  links.className = "links";
  links.width = box.scrollWidth; links.height = box.scrollHeight;
  box.appendChild(links);
  const ctx = links.getContext("2d"), origin = box.getBoundingClientRect();
  // Where a node sits in the (scrollable) box: its left and right edges and its middle.
  const place = (node) => {
    const r = node.getBoundingClientRect();
    const dx = box.scrollLeft - origin.left;
    return {left: r.left + dx, right: r.right + dx,
            middle: (r.top + r.bottom) / 2 - origin.top + box.scrollTop};
  };
  for (let l = 0; l + 1 < columns.length; l++) {
    const kernel = state.weights[l];
    const top = Math.max(1e-6, ...kernel.flat().map((w) => Math.abs(w || 0)));
    columns[l].forEach((from, i) => {
      columns[l + 1].forEach((to, j) => {
        const w = kernel[i][j] || 0, t = Math.abs(w) / top;
        ctx.strokeStyle = w < 0 ? `rgba(245,147,34,${0.15 + 0.85 * t})`
                                : `rgba(8,119,189,${0.15 + 0.85 * t})`;
        ctx.lineWidth = 0.5 + 2.5 * t;
        ctx.beginPath();
        const a = place(from), b = place(to);
        ctx.moveTo(a.right, a.middle);
        ctx.lineTo(b.left, b.middle);
        ctx.stroke();
      });
    });
  }
}

function drawFeatures() {
  const g = 16;
  for (const [id, [, formula]] of Object.entries(FEATURES)) {
    const canvas = $("thumb_" + id);
    if (!state) { canvas.getContext("2d").clearRect(0, 0, g, g); continue; }
    const values = featureValues(formula, g);
    heatmap(canvas, values, g, Math.max(1e-6, ...values.map(Math.abs)));
  }
}

$("train").onclick = async () => {
  // Start on the network the controls describe: wait for the latest reset to land.
  let latest;
  do { latest = pending; await latest; } while (latest !== pending);
  if (!state) await reset();
  if (!state || running) return;
  showError(""); setRunning(true); loop(++runId);
};
$("pause").onclick = () => setRunning(false);
$("reset").onclick = reset;
for (const id of RESET_CONTROLS) $(id).addEventListener("change", reset);
for (const id of Object.keys(FEATURES)) $("f_" + id).addEventListener("change", reset);
for (const id of ["noise", "train_ratio"]) $(id).addEventListener("input", showValues);
for (const id of ["show_test", "discretize"]) $(id).addEventListener("change", draw);
// For tests and the curious: what the page shows and trains (read-only).
window.fundlPlayground = {
  get state() { return state; }, get running() { return running; },
  get seq() { return newSeq; }, get busy() { return trainCalls > 0; }, spec,
  settled: () => pending};
reset();
</script>
</body>
</html>
"""
