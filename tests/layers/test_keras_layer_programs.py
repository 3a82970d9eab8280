"""Keras example programs built on the new layers, ported by changing the imports only
(tiny sizes): "Text classification with Transformer" (a subclassed TransformerBlock around
MultiHeadAttention, a token-and-position embedding) and "Image classification from scratch"
(RandomFlip/RandomRotation augmentation, Rescaling, SeparableConv2D residual blocks,
functional merges)."""
import numpy as np

import fundl as fl
from fundl import layers
from fundl.layers import Layer


class TransformerBlock(Layer):
    """The Keras example's block, verbatim but for `keras` -> `fundl`."""

    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1, **kwargs):
        super().__init__(**kwargs)
        self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = fl.Sequential([layers.Dense(ff_dim, activation="relu"),
                                  layers.Dense(embed_dim)])
        self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = layers.Dropout(rate)
        self.dropout2 = layers.Dropout(rate)

    def call(self, inputs):
        attn_output = self.att(inputs, inputs)
        attn_output = self.dropout1(attn_output)
        out1 = self.layernorm1(inputs + attn_output)
        ffn_output = self.ffn(out1)
        ffn_output = self.dropout2(ffn_output)
        return self.layernorm2(out1 + ffn_output)


class TokenAndPositionEmbedding(Layer):
    def __init__(self, maxlen, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        maxlen = fl.shape(x)[-1]
        positions = fl.arange(start=0, stop=maxlen, step=1)
        positions = self.pos_emb(positions)
        x = self.token_emb(x)
        return x + positions


def test_text_classification_with_transformer():
    fl.manual_seed(0)
    vocab_size, maxlen, embed_dim = 20, 8, 8
    rng = np.random.default_rng(0)
    x = rng.integers(1, vocab_size, (96, maxlen))
    y = ((x > vocab_size // 2).sum(1) > maxlen // 2).astype("int64")  # mostly "high" tokens

    inputs = layers.Input(shape=(maxlen,))
    embedding_layer = TokenAndPositionEmbedding(maxlen, vocab_size, embed_dim)
    h = embedding_layer(inputs)
    transformer_block = TransformerBlock(embed_dim, num_heads=2, ff_dim=16)
    h = transformer_block(h)
    h = layers.GlobalAveragePooling1D()(h)
    h = layers.Dropout(0.1)(h)
    h = layers.Dense(16, activation="relu")(h)
    outputs = layers.Dense(2, activation="softmax")(h)
    model = fl.Model(inputs=inputs, outputs=outputs)
    model.compile(optimizer=fl.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=8, verbose=0)
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.8
    # the attention block's weights are the model's (tracked through the subclassed layer)
    names = {w.name for w in model.trainable_weights}
    assert {"query_kernel", "output_kernel", "gamma", "embeddings"} <= names


def test_image_classification_from_scratch_blocks():
    fl.manual_seed(1)

    data_augmentation_layers = [layers.RandomFlip("horizontal"), layers.RandomRotation(0.1)]

    def data_augmentation(images):
        for layer in data_augmentation_layers:
            images = layer(images)
        return images

    def make_model(input_shape, num_classes):
        inputs = layers.Input(shape=input_shape)
        x = data_augmentation(inputs)
        x = layers.Rescaling(1.0 / 255)(x)
        x = layers.Conv2D(8, 3, strides=2, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        previous_block_activation = x
        for size in [8, 16]:
            x = layers.Activation("relu")(x)
            x = layers.SeparableConv2D(size, 3, padding="same")(x)
            x = layers.BatchNormalization()(x)
            x = layers.Activation("relu")(x)
            x = layers.SeparableConv2D(size, 3, padding="same")(x)
            x = layers.BatchNormalization()(x)
            x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
            residual = layers.Conv2D(size, 1, strides=2, padding="same")(
                previous_block_activation)
            x = layers.add([x, residual])
            previous_block_activation = x
        x = layers.SeparableConv2D(16, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dropout(0.25)(x)
        outputs = layers.Dense(1, activation=None)(x)
        return fl.Model(inputs, outputs)

    model = make_model((8, 8, 3), 2)
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, (16, 1)).astype("float32")
    x = rng.integers(0, 120, (16, 8, 8, 3)).astype("float32") + y[:, :, None, None] * 120
    model.compile(optimizer=fl.optimizers.Adam(3e-3), loss="mse")
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
