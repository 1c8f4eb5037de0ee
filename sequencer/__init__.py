"""The executor, the run store, resume, safety and the ``cellseq`` command line."""
