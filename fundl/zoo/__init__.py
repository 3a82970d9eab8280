"""The zoo: classic architectures as functions returning built, uncompiled models.

Every function takes ``input_shape`` (channels-last), ``classes``, ``include_top`` and
``weights`` (None only: no pretrained weights are shipped), and builds the network from the
public layers only. Parameter counts at the reference input sizes equal the widely used
builds (torchvision/Keras); each function's docstring says which variant it follows.

    >>> import fundl
    >>> model = fundl.zoo.resnet_cifar(20)
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
    ...               metrics=["accuracy"])
    >>> sorted(fundl.zoo.list_models())[:3]
    ['alexnet', 'densenet', 'densenet121']
"""
from .alexnet import alexnet
from .autoencoder import (
    Sampling, VariationalAutoencoder, channel_autoencoder, conv_autoencoder, dense_autoencoder,
    pretrain_greedy, stacked_autoencoder, variational_autoencoder,
)
from .dqn import mlp_q_network, nature_dqn
from .gan import GAN, dcgan, dcgan_discriminator, dcgan_generator, mlp_gan, sample_quality
from .densenet import densenet, densenet121, densenet169, densenet201, densenet_bc_cifar
from .googlenet import googlenet
from .lenet import lenet5
from .resnet import resnet, resnet18, resnet34, resnet50, resnet101, resnet152, resnet_cifar
from .vgg import vgg, vgg11, vgg13, vgg16, vgg19

__all__ = [
    "alexnet", "densenet", "densenet121", "densenet169", "densenet201", "densenet_bc_cifar",
    "googlenet", "lenet5", "list_models", "resnet", "resnet18", "resnet34", "resnet50",
    "resnet101", "resnet152", "resnet_cifar", "vgg", "vgg11", "vgg13", "vgg16", "vgg19",
    "mlp_q_network", "nature_dqn",
    "Sampling", "VariationalAutoencoder", "channel_autoencoder", "conv_autoencoder",
    "dense_autoencoder", "pretrain_greedy", "stacked_autoencoder", "variational_autoencoder",
    "GAN", "dcgan", "dcgan_discriminator", "dcgan_generator", "mlp_gan", "sample_quality",
]

_DESCRIPTIONS = {
    "lenet5": "LeNet-5 (LeCun et al. 1998): 2 conv + 3 dense layers, 61,706 parameters on 32x32x1",
    "alexnet": "AlexNet, torchvision's single-tower build (LRN optional), 61.1M parameters",
    "vgg": "VGG (Simonyan & Zisserman 2015), any configuration of Table 1: A, A-LRN, B, C, D, E",
    "vgg11": "VGG-11 (configuration A), 132.9M parameters",
    "vgg13": "VGG-13 (configuration B), 133.0M parameters",
    "vgg16": "VGG-16 (configuration D), 138.4M parameters",
    "vgg19": "VGG-19 (configuration E), 143.7M parameters",
    "googlenet": "GoogLeNet / Inception v1 (Szegedy et al. 2015), auxiliary classifiers "
                 "optional, 6.6M parameters",
    "resnet": "ResNet (He et al. 2016) for ImageNet, depth 18, 34, 50, 101 or 152",
    "resnet18": "ResNet-18, basic blocks, 11.7M parameters",
    "resnet34": "ResNet-34, basic blocks, 21.8M parameters",
    "resnet50": "ResNet-50, bottleneck blocks, 25.6M parameters",
    "resnet101": "ResNet-101, bottleneck blocks, 44.5M parameters",
    "resnet152": "ResNet-152, bottleneck blocks, 60.2M parameters",
    "resnet_cifar": "CIFAR ResNet-20/32/44/56/110 (He et al. 2016, 6n+2 layers), 0.27M-1.7M "
                    "parameters",
    "densenet": "DenseNet-BC (Huang et al. 2017) for ImageNet, depth 121, 169 or 201",
    "densenet121": "DenseNet-121, growth rate 32, 8.0M parameters",
    "densenet169": "DenseNet-169, growth rate 32, 14.1M parameters",
    "densenet201": "DenseNet-201, growth rate 32, 20.0M parameters",
    "densenet_bc_cifar": "CIFAR DenseNet-BC (6n+4 layers, growth rate k); BC-100 with k=12: "
                         "0.8M parameters",
    "nature_dqn": "Nature DQN (Mnih et al. 2015): 3 conv + 2 dense layers on 84x84x4 frames, "
                  "1.69M parameters (6 actions)",
    "mlp_q_network": "a multilayer-perceptron Q-network for vector observations (CartPole)",
    "dense_autoencoder": "a fully connected autoencoder (sparse, denoising, or deep as Hinton "
                         "& Salakhutdinov 2006)",
    "conv_autoencoder": "a convolutional autoencoder: strided convolutions down, transposed "
                        "convolutions up",
    "stacked_autoencoder": "a stacked autoencoder for greedy layer-wise pre-training "
                           "(pretrain_greedy)",
    "variational_autoencoder": "a VAE (Kingma & Welling 2014) with its own train_step and "
                               "sampling from the prior",
    "channel_autoencoder": "the learned physical layer (O'Shea & Hoydis 2017): k bits over n "
                           "real AWGN channel uses",
    "mlp_gan": "a GAN of multilayer perceptrons (Goodfellow et al. 2014), non-saturating loss",
    "dcgan": "DCGAN (Radford et al. 2016): strided convolutions, batch norm, ReLU/LeakyReLU",
    "dcgan_generator": "DCGAN's generator (fractionally strided convolutions, tanh output)",
    "dcgan_discriminator": "DCGAN's discriminator (strided convolutions, LeakyReLU 0.2)",
}


def list_models() -> dict:
    """The zoo's model functions by name, each with a one-line description.

    Returns:
        dict ``{name: description}``, in the zoo's order (oldest architecture first); every
        name is a function of this module.

    Example:
        >>> for name, text in fundl.zoo.list_models().items():
        ...     print(f"{name:18} {text}")
    """
    return dict(_DESCRIPTIONS)
