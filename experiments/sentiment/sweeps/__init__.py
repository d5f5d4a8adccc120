"""sentiment's sweep files: ``./launch.sh sweep sentiment --sweep <name>`` (see seqjax/sweep/__init__.py)."""
