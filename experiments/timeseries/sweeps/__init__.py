"""timeseries's sweep files: ``./launch.sh sweep timeseries --sweep <name>`` (see seqjax/sweep/__init__.py)."""
