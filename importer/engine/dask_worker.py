"""Set-up of each local Dask worker the importer starts (``LocalCluster(preload=...)``)."""

from __future__ import annotations

import signal


def dask_setup(worker: object) -> None:
    # A terminal's Ctrl-C reaches every process of the command, workers included. A
    # worker must keep running so that the coordinator can stop its partition in order
    # and collect what it did; the coordinator handles the Ctrl-C. This runs in every
    # worker, one the nanny restarts too.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
