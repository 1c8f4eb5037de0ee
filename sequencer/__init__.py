"""The executor, the run store, resume, safety and the ``cellseq`` command line."""

import time

#: When this package was first imported: for the ``cellseq`` command, the moment the process
#: began to load cellseq, from which the wall time it prints is counted.
IMPORTED_AT = time.perf_counter()
