"""The ``batched`` Hydra launcher of the urbanization engine (``hydra/launcher=batched``)."""
