"""Bad input to the distributed strategies: clear errors, raised before Ray starts."""
import sys

import numpy as np
import pytest

import fundl as fl
from fundl.distributed import DataParallelStrategy, ParameterServerStrategy, PipelineStrategy


def _mlp(compiled=True):
    model = fl.Sequential([fl.layers.Dense(4, activation="relu", input_shape=(3,)),
                           fl.layers.Dense(4, activation="relu"),
                           fl.layers.Dense(2, activation="softmax")])
    if compiled:
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


def _data(n=8):
    x = np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def _ray_running():
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


@pytest.mark.parametrize("cls", [DataParallelStrategy, ParameterServerStrategy])
def test_num_workers_below_one(cls):
    with pytest.raises(ValueError, match="num_workers must be >= 1, got 0"):
        cls(num_workers=0)


@pytest.mark.parametrize("cls", [DataParallelStrategy, ParameterServerStrategy])
def test_num_workers_not_an_int(cls):
    with pytest.raises(TypeError, match="num_workers must be an int"):
        cls(num_workers=2.5)


def test_mode_and_staleness_checked():
    with pytest.raises(ValueError, match="mode must be 'async' or 'sync'"):
        ParameterServerStrategy(mode="hogwild")
    with pytest.raises(ValueError, match="max_staleness applies to mode='async'"):
        ParameterServerStrategy(mode="sync", max_staleness=2)
    with pytest.raises(ValueError, match="max_staleness must be None or an int >= 0"):
        ParameterServerStrategy(max_staleness=-1)


@pytest.mark.parametrize("strategy", [DataParallelStrategy(2), ParameterServerStrategy(2),
                                      PipelineStrategy([1])])
def test_model_not_compiled(strategy):
    x, y = _data()
    with pytest.raises(ValueError, match="is not compiled; call model.compile"):
        strategy.fit(_mlp(compiled=False), x, y)
    assert not _ray_running()


@pytest.mark.parametrize("stages, message", [
    ([[0], [1]], "do not cover the model's 3 layers"),
    ([[0, 1], [1, 2]], "do not cover the model's 3 layers"),
    ([[1, 0], [2]], "do not cover the model's 3 layers"),
    ([[0], [], [1, 2]], "do not cover the model's 3 layers"),
    ([3], r"strictly increasing and inside \(0, 3\)"),
    ([2, 1], r"strictly increasing and inside \(0, 3\)"),
    ([0, 2], r"strictly increasing and inside \(0, 3\)"),
])
def test_pipeline_split_must_cover_the_model(stages, message):
    x, y = _data()
    with pytest.raises(ValueError, match=message):
        PipelineStrategy(stages).fit(_mlp(), x, y)
    assert not _ray_running()


def test_pipeline_stage_types():
    with pytest.raises(TypeError, match="list of split points"):
        PipelineStrategy(2)
    with pytest.raises(TypeError, match="each stage must be a list of layer indices"):
        PipelineStrategy([[0], "1"]).fit(_mlp(), *_data())
    with pytest.raises(ValueError, match="micro_batches must be >= 1"):
        PipelineStrategy([1], micro_batches=0)


def test_pipeline_needs_a_sequential_model():
    inp = fl.Input(shape=(3,))
    out = fl.layers.Dense(2, activation="softmax")(fl.layers.Dense(4)(inp))
    model = fl.Model(inp, out)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(TypeError, match="only Sequential models can be split"):
        PipelineStrategy([1]).fit(model, *_data())


def test_unsupported_fit_arguments():
    x, y = _data()
    with pytest.raises(NotImplementedError, match="class_weight and sample_weight"):
        DataParallelStrategy(2).fit(_mlp(), x, y, sample_weight=np.ones(len(x)))
    with pytest.raises(ValueError, match="validation_split must be in"):
        DataParallelStrategy(2).fit(_mlp(), x, y, validation_split=1.5)
    with pytest.raises(ValueError, match="cannot be shared by 16 workers"):
        ParameterServerStrategy(16).fit(_mlp(), x, y)
    assert not _ray_running()


def test_bad_address_and_resources():
    with pytest.raises(TypeError, match="address must be None"):
        DataParallelStrategy(2, address=6379)
    with pytest.raises(TypeError, match="resources_per_worker must be a dict"):
        DataParallelStrategy(2, resources_per_worker=1)
    with pytest.raises(ValueError, match=r"resources_per_worker\['CPU'\] must be a number"):
        DataParallelStrategy(2, resources_per_worker={"CPU": -1})


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'fundl\[distributed\]'"):
        DataParallelStrategy(2).fit(_mlp(), *_data())
