"""The multitask example: both heads learn, the joint network has one trunk's weights."""


def test_multitask_example_runs_and_learns_both_tasks(capsys, load_example, need_data):
    need_data("mnist")
    results = load_example("multitask_mnist").main(["--train", "600", "--epochs", "1"])
    joint = results["multitask (one trunk, two heads)"]
    singles = results["two single-task networks"]
    assert joint[0] > 0.5 and joint[1] > 0.5        # digits and thickness above chance
    assert joint[2] < singles[2]                    # one trunk instead of two
    assert "digit acc" in capsys.readouterr().out
