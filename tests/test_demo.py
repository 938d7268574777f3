"""The README's first command (``python -m sktransfer.demo``): it runs on the
shipped data, its tables say what they measure, and its calibration-transfer
claim holds (closed form: deterministic)."""

import numpy as np
import pytest

from sktransfer import demo
from sktransfer.finetuning import list_strategies

FAST = ["--epochs", "2", "--labels", "20", "--years", "10"]


def test_weather_demo_runs_every_strategy_against_the_baselines():
    results = demo.run(n_labels=20, max_epochs=3)
    for strategy in set(list_strategies()) - {"full"}:  # full: with and without L2-SP
        assert demo.STRATEGIES.get(strategy, f"finetune={strategy!r}") in results
    for baseline in (
        "Predict the mean of the 20 labelled days",
        "Tomorrow = today (no model)",
        "Source model as is (trained on Chicago)",
        "Train on target only (20 labels)",
        demo.BEST,
        "Let sktransfer choose (finetune='auto')",
    ):
        assert baseline in results
    assert all(np.isfinite(v) and v > 0 for v in results.values())


def test_the_splits_keep_the_test_period_out_of_training():
    split = demo.weather_split("Chicago", "Beijing", "avg_temp", 40)
    assert len(split.y_lab) == 40 and len(split.y_test) > 350
    assert split.when[0] == np.datetime64("2017-01-02")  # 1 January's next day
    weekly = demo.weekly_split("Chicago", "Beijing", 5)
    assert weekly.X_test.shape[1] == split.X_test.shape[1] and len(weekly.y_lab) == 5
    assert weekly.when[0] >= np.datetime64("2017-01-01")
    # next week's total: seven times the mean of its days' rainfall
    assert weekly.y_test[:-1] == pytest.approx(7 * weekly.X_test[1:, weekly.persist])
    years = demo.australia_split("east", "sw", 20)
    assert years.when[0] == years.when[-1] - len(years.y_test) + 1
    np.testing.assert_array_equal(years.X_test[1:, 0], years.y_test[:-1])
    with pytest.raises(ValueError, match="labels=400 is out of range"):
        demo.weather_split("Chicago", "Beijing", "avg_temp", 400)


def test_calibration_demo_adaptation_beats_the_source_models():
    adapted = "Standardise each instrument, then linear"
    for target in (2, 3):
        results = demo.run_calibration(target)
        # measured: 0.063 / 0.068 against PLS 0.110 / 0.093, mean 0.192
        assert results[adapted] < 0.8 * results["Source model as is: PLS"]
        assert (
            results[adapted]
            < 0.5 * results["Predict the mean of the 60 source samples"]
        )
        assert results[adapted] < 0.5 * results["Source model as is: linear"]
        assert (
            results[adapted]
            < results["Train on target only: PLS, 60 labels (reference)"]
        )


def test_demo_main_prints_readable_tables_and_writes_the_figure(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "demo.png"
    demo.main([*FAST, "--plot", str(path)])
    out, err = capsys.readouterr()
    assert out.startswith("sktransfer demo: transfer learning for regression")
    for text in ("RMSE °F", "MAE °F", "RMSE in", "RMSE mm", "RMSE %", "fit time"):
        assert text in out
    assert "Fine-tune all layers (L2-SP)" in out and "lp_ft" not in out
    assert out.count("\n  -> ") == 6 and "NOT predictable" in out
    assert "Summary" in out and f"Figure: {path}" in out
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # one progress line per fit, on standard error
    assert err.count("fitting: ") > 20 and "fitting: Source model" in err


def test_demo_parts_and_places(capsys, tmp_path):
    demo.main(["--part", "calibration", "--no-plot"])
    out = capsys.readouterr().out
    assert out.count("Corn oil content") == 2 and "Why the linear model" in out
    assert "Figure" not in out
    demo.main([*FAST, "--part", "rainfall", "--target", "Auckland", "--no-plot"])
    out = capsys.readouterr().out
    assert "Auckland's rainfall is recorded as 0" in out and "Australia" in out


def test_demo_help_lists_the_choices(capsys):
    with pytest.raises(SystemExit):
        demo.main(["--help"])
    out = capsys.readouterr().out
    for text in ("--source", "--target", "--labels", "--plot", "--column"):
        assert text in out
    for city in demo.CITIES:
        assert city in out
    assert "avg_temp" in out and "°F" in out and "precip" in out and "Queensland" in out
    with pytest.raises(SystemExit):
        demo.main(["--labels", "1"])
    assert "--labels 1: give 2 to 365 labelled days" in capsys.readouterr().err
