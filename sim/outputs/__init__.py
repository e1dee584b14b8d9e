"""The outputs wing: the output datasets and their provenance (:mod:`.dataset`), the target
report (:mod:`.targets`), figures (:mod:`.figures`), the HTML page (:mod:`.html`), comparisons
of runs (:mod:`.comparison`), collected sweeps (:mod:`.collection`), the lever solver
(:mod:`.solver`), runs on disk: status, digests, finding runs (:mod:`.runs`) and one run into its
directory (:mod:`.job`). Figures and the HTML page never import the engine or numba."""
