"""`actok policy`: the same model, data and budget for every tokenizer; only the action representation varies.

Flow: dataset -> (observation window, action chunk) examples split by episode (`data`) -> one contender per
tokenizer plus `continuous` and `noop` (`policies`) -> open-loop and closed-loop scores (`evaluate`) -> one
results.json record per (contender, seed) (`benchmark`, run as a grid by `actok.executor`) -> figures and the
report section, from the JSON alone (`plots`, `report`).
"""

RESULTS_FILE = "results.json"  # the records of a run (`actok report` finds them by this name)
# The fields of a record that the figures and the report read (`benchmark.run_cell` writes them all).
RECORD_KEYS = frozenset({"policy", "kind", "seed", "open_loop", "closed_loop", "mean_tokens", "learning_curve"})
