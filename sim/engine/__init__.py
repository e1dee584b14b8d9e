"""The engine wing: the step contract (:mod:`.contract`), the numba kernel (:mod:`.kernel`, its
compile options in :mod:`.jit`, the ensemble/summary path in it) and the NumPy reference
(:mod:`.reference`), the time loop (:mod:`.runner`), the model builder (:mod:`.model`) and the
policy levers it applies (:mod:`.levers`), from a config to a built model (:mod:`.prepare`),
and the classic textbook methods (:mod:`.classic`). Touches no files but through the inputs wing."""
