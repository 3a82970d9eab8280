"""fundl.utils and fundl.preprocessing.sequence: Keras's outputs for the same inputs."""
import random

import numpy as np
import pytest

import fundl as fl
from fundl import utils
from fundl.preprocessing import sequence
from fundl.testing import assert_error


def test_to_categorical_like_keras():
    np.testing.assert_array_equal(utils.to_categorical([0, 2, 1]), np.eye(3)[[0, 2, 1]])
    out = utils.to_categorical(np.array([[1], [0]]), num_classes=4)  # trailing 1 dropped
    assert out.shape == (2, 4) and out.dtype == np.float64   # Keras 3's dtype for arrays
    np.testing.assert_array_equal(out, [[0, 1, 0, 0], [1, 0, 0, 0]])
    grid = utils.to_categorical(np.array([[0, 1], [2, 0]]))
    assert grid.shape == (2, 2, 3) and grid[1, 0, 2] == 1
    assert utils.to_categorical(np.array([1.0, 0.0])).tolist() == [[0, 1], [1, 0]]
    t = utils.to_categorical(fl.tensor([1, 0]))
    assert isinstance(t, fl.Tensor) and t.shape == (2, 2) and t.dtype == np.float32
    assert_error(ValueError, utils.to_categorical, [0, 3], num_classes=3,
                 contains=["to_categorical", "3", "num_classes"])
    assert_error(ValueError, utils.to_categorical, [-1], contains=["to_categorical", ">= 0"])
    assert_error(ValueError, utils.to_categorical, [0.5], contains=["whole numbers"])


def test_normalize_like_keras():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, -1.0]])
    np.testing.assert_allclose(utils.normalize(x), [[0.6, 0.8], [0, 0], [0.5 ** 0.5, -0.5 ** 0.5]])
    np.testing.assert_allclose(utils.normalize(x, axis=0, order=1),
                               x / np.abs(x).sum(axis=0, keepdims=True))


def test_set_random_seed_seeds_fundl_numpy_and_python():
    utils.set_random_seed(123)
    a = (fl.randn(3).numpy(), np.random.rand(), random.random(),
         fl.random.normal((2,)).numpy())
    utils.set_random_seed(123)
    b = (fl.randn(3).numpy(), np.random.rand(), random.random(),
         fl.random.normal((2,)).numpy())
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1] and a[2] == b[2]
    np.testing.assert_array_equal(a[3], b[3])
    assert_error(ValueError, utils.set_random_seed, 1.5, contains=["set_random_seed", "int"])


@pytest.mark.parametrize("kwargs,expected", [
    ({}, [[1, 2, 3], [0, 4, 5], [0, 0, 6]]),
    ({"padding": "post"}, [[1, 2, 3], [4, 5, 0], [6, 0, 0]]),
    ({"maxlen": 2}, [[2, 3], [4, 5], [0, 6]]),
    ({"maxlen": 2, "truncating": "post"}, [[1, 2], [4, 5], [0, 6]]),
    ({"maxlen": 4, "value": -1}, [[-1, 1, 2, 3], [-1, -1, 4, 5], [-1, -1, -1, 6]]),
])
def test_pad_sequences_known_outputs(kwargs, expected):
    out = sequence.pad_sequences([[1, 2, 3], [4, 5], [6]], **kwargs)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, expected)
    assert utils.pad_sequences is sequence.pad_sequences
    assert fl.preprocessing.sequence.pad_sequences is sequence.pad_sequences


def test_pad_sequences_floats_items_empty_and_strings():
    out = sequence.pad_sequences([[0.5, 1.5], []], dtype="float32", value=0.25)
    np.testing.assert_array_equal(out, [[0.5, 1.5], [0.25, 0.25]])
    items = sequence.pad_sequences([np.ones((2, 3)), np.ones((1, 3))], dtype="float32")
    assert items.shape == (2, 2, 3) and (items[1, 0] == 0).all() and (items[1, 1] == 1).all()
    text = sequence.pad_sequences([["a", "b"], ["c"]], dtype=object, value="<pad>")
    assert text.tolist() == [["a", "b"], ["<pad>", "c"]]
    assert sequence.pad_sequences([], maxlen=3).shape == (0, 3)


def test_pad_sequences_errors():
    assert_error(ValueError, sequence.pad_sequences, [[1]], padding="middle",
                 contains=["padding", "middle"])
    assert_error(ValueError, sequence.pad_sequences, [[1]], truncating="x",
                 contains=["truncating"])
    assert_error(ValueError, sequence.pad_sequences, [[1], 5], contains=["entry 1"])
    assert_error(ValueError, sequence.pad_sequences, [["a"]], value="x",
                 contains=["dtype=object"])
    assert_error(ValueError, sequence.pad_sequences, [np.ones((2, 3)), np.ones((1, 2))],
                 dtype="float32", contains=["sequence 1", "(2,)", "(3,)"])


class _Batches(utils.PyDataset):
    def __init__(self, x, y, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size = x, y, batch_size
        self.epochs_ended = 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        s = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[s], self.y[s]

    def on_epoch_end(self):
        self.epochs_ended += 1


def test_py_dataset_protocol_and_keras_arguments():
    x, y = np.arange(10.0).reshape(10, 1), np.arange(10)
    ds = _Batches(x, y, 4, workers=2, use_multiprocessing=False, max_queue_size=5)
    assert len(ds) == 3 and ds.num_batches == 3
    assert (ds.workers, ds.use_multiprocessing, ds.max_queue_size) == (2, False, 5)
    batches = list(ds)
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(batches[2][1], [8, 9])
    assert utils.Sequence is utils.PyDataset

    class Forgetful(utils.PyDataset):  # no super().__init__(): Keras's defaults
        def __len__(self):
            return 1

        def __getitem__(self, index):
            return np.zeros((1, 1)), np.zeros(1)

    assert Forgetful().workers == 1 and Forgetful().max_queue_size == 10
    assert_error(NotImplementedError, utils.PyDataset().__getitem__, 0, contains=["__getitem__"])
    assert utils.PyDataset().num_batches is None
    assert_error(ValueError, utils.PyDataset, workers=0, contains=["workers"])


def test_py_dataset_trains_a_model_if_fit_accepts_it():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], dtype=np.float32))
    ds = _Batches(x, y, 8)
    model = fl.models.Sequential([fl.Input(shape=(3,)), fl.layers.Dense(1)])
    model.compile(optimizer=fl.optimizers.SGD(0.1), loss="mse")
    try:
        history = model.fit(ds, epochs=3, verbose=0)
    except (TypeError, ValueError) as e:
        pytest.skip(f"fit does not take a PyDataset yet: {e}")
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
    assert ds.epochs_ended == 3


def test_clear_session_restarts_layer_names():
    utils.clear_session()
    first = fl.layers.Dense(2).name
    fl.layers.Dense(2)
    utils.clear_session()
    assert fl.layers.Dense(2).name == first


def test_clear_session_hands_back_the_buffer_pool():
    import numpy as np
    from fundl import runtime

    pool = runtime.state().workspace
    held = pool.empty(np, (256, 256), np.float32)   # in use: stays valid
    free = pool.empty(np, (128, 256), np.float32)
    del free
    assert pool.nbytes >= held.nbytes + 128 * 256 * 4
    utils.clear_session()
    assert pool.nbytes == 0
    held[:] = 1.0
    assert pool.empty(np, (256, 256), np.float32) is not held   # forgotten, never re-issued


def test_plot_model_delegates_to_viz(tmp_path, monkeypatch):
    import fundl.viz as viz
    calls = {}

    def fake(model, to_file=None, show_shapes=True, dpi=96):
        calls.update(model=model, to_file=to_file, show_shapes=show_shapes, dpi=dpi)
        return "figure"

    monkeypatch.setattr(viz, "plot_model", fake)
    model = fl.models.Sequential([fl.Input(shape=(3,)), fl.layers.Dense(1)])
    with pytest.warns(UserWarning, match="expand_nested"):
        out = utils.plot_model(model, to_file=str(tmp_path / "m.png"), show_shapes=True,
                               expand_nested=True)
    assert out == "figure"
    assert calls == {"model": model, "to_file": str(tmp_path / "m.png"), "show_shapes": True,
                     "dpi": 200}
    assert_error(TypeError, utils.plot_model, model, bogus=1, contains=["bogus"])
