"""The three training protocols: each gives a classifier far above chance on few labels."""


def test_training_protocols_example(capsys, load_example, need_data):
    need_data("mnist")
    table = load_example("training_protocols").main(
        ["--labels", "100", "--unlabelled", "2000", "--pretrain-epochs", "1", "--steps", "40",
         "--seeds", "1"])
    row = table[100]
    assert set(row) == {"(a) supervised from scratch", "(b) pre-trained features + linear SVM",
                        "(c) pre-trained, then fine-tuned"}
    assert all(acc > 0.25 for acc in row.values()), row    # chance is 0.1
    assert "protocol" in capsys.readouterr().out
