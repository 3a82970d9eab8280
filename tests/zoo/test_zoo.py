"""fundl.zoo as a whole: list_models and the arguments every model function shares."""
import inspect

import pytest

import fundl as fl

# name -> the extra positional argument it needs, if any
_SMALL = {
    "lenet5": {}, "alexnet": {"input_shape": (63, 63, 3)}, "vgg": {"config": "A"},
    "googlenet": {}, "resnet": {"depth": 18}, "resnet_cifar": {}, "densenet": {"depth": 121},
    "densenet_bc_cifar": {"depth": 16, "growth_rate": 4},
}


# the zoo's tools and classes (no model functions of their own) and its models that are not
# image classifiers (no classes/include_top/weights arguments)
_TOOLS = {"pretrain_greedy", "sample_quality"}
_NOT_CLASSIFIERS = {
    "mlp_q_network", "nature_dqn", "dense_autoencoder", "conv_autoencoder",
    "stacked_autoencoder", "variational_autoencoder", "channel_autoencoder", "mlp_gan", "dcgan",
    "dcgan_generator", "dcgan_discriminator",
}


def _functions():
    return [name for name in fl.zoo.__all__ if name != "list_models" and name not in _TOOLS
            and inspect.isfunction(getattr(fl.zoo, name))]


def _classifiers():
    return [name for name in _functions() if name not in _NOT_CLASSIFIERS]


def test_list_models_names_every_model_function_with_one_line():
    models = fl.zoo.list_models()
    assert sorted(models) == sorted(_functions())
    for name, text in models.items():
        assert callable(getattr(fl.zoo, name))
        assert isinstance(text, str) and text and "\n" not in text and len(text) < 120


def test_list_models_returns_a_copy():
    fl.zoo.list_models()["lenet5"] = "changed"
    assert fl.zoo.list_models()["lenet5"] != "changed"


@pytest.mark.parametrize("name", _classifiers())
def test_every_model_function_takes_the_shared_arguments(name):
    params = inspect.signature(getattr(fl.zoo, name)).parameters
    assert {"input_shape", "classes", "include_top", "weights"} <= set(params)
    assert params["weights"].default is None and params["include_top"].default is True
    assert getattr(fl.zoo, name).__doc__


@pytest.mark.parametrize("name", _classifiers())
def test_pretrained_weights_are_refused(name):
    kwargs = {k: v for k, v in _SMALL.get(name, {}).items() if k in ("config", "depth")}
    with pytest.raises(ValueError, match=r"fundl\.zoo\..*weights must be None.*'imagenet'"):
        getattr(fl.zoo, name)(weights="imagenet", **kwargs)


@pytest.mark.parametrize("bad", [(28, 28), (0, 28, 1), (28, 28, None), "28x28", (28.0, 28, 1)])
def test_bad_input_shape(bad):
    with pytest.raises(ValueError, match=r"fundl\.zoo\.lenet5: input_shape must be \(height, "
                                         r"width, channels\)"):
        fl.zoo.lenet5(input_shape=bad)


def test_bad_classes_and_include_top():
    with pytest.raises(ValueError, match=r"lenet5: classes must be a positive int, got 0"):
        fl.zoo.lenet5(classes=0)
    with pytest.raises(TypeError, match=r"lenet5: include_top must be True or False"):
        fl.zoo.lenet5(include_top="yes")


def test_models_are_built_and_uncompiled():
    model = fl.zoo.resnet_cifar(8)
    assert model.built and model.layers
    assert getattr(model, "optimizer", None) is None
