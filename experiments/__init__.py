"""Experiments: the ``esd-gym`` command line, training, evaluation, comparisons and reports."""
