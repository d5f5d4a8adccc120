"""The recurrent configurations to choose from on validation, for any series (6 configurations).

    ./launch.sh sweep timeseries --sweep select --config nile --set data.csv=PATH/nile.csv --seeds 3
    ./launch.sh timeseries compare runs/sweeps/<root>      # the choice on validation, and the baseline's

Per-window normalisation (none, the last value, the mean) crossed with the autoregressive highway
(none, or one whose order is chosen on validation and that starts from its least-squares fit).
Every run reports the classical baselines on the same windows; ``compare`` ranks the
configurations by their mean validation MASE over seeds and sets the best one's test MAE against
the baseline that validation chose. No test score takes part in any choice.
"""

from seqjax.sweep import product, sweep


def get_sweep():
    return product(
        sweep("model.norm", ["none", "last", "mean"]),
        sweep("model.highway", [0, -1]),
    )
