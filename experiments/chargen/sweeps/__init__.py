"""chargen's sweep files: ``./launch.sh sweep chargen --sweep <name>`` (see seqjax/sweep/__init__.py)."""
