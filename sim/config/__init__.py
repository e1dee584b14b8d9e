"""The config wing: the structured schema Hydra validates YAML against and its value checks
(:mod:`.schema`), year-keyed values and region masks (:mod:`.values`), the table of fitted and
uncertain parameters (:mod:`.parameters`) and composing a config outside a Hydra app
(:mod:`.compose`)."""
