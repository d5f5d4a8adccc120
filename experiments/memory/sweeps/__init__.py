"""memory's sweep files: ``./launch.sh sweep memory --sweep <name>`` (see seqjax/sweep/__init__.py)."""
