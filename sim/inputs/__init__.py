"""The inputs wing: loading the shipped (or derived-on-first-use) inputs (:mod:`.load`), deriving
them from the census tables (:mod:`.derive`), and the preparation methods it uses: graduation of
age groups and iterative proportional fitting (:mod:`.prep`)."""
