"""The imitation library's published normalized scores, shown beside ours and never mixed.

Their envs (seals' fixed-horizon MuJoCo variants), experts, demonstrations and budgets differ
from ours: a scale to read ours against, not a run-for-run comparison.
"""

from il_lab.analysis.tables import markdown_table

PUBLISHED_SOURCE = "imitation v1.0 benchmark, seals MuJoCo, 10 seeds, 50 evaluation episodes"
PUBLISHED_ENVS = ("HalfCheetah", "Hopper")
PUBLISHED_SCORES = {  # algorithm -> (scores on PUBLISHED_ENVS, the budget it was given)
    "BC": ((0.92, 1.00), "all of its expert demonstrations"),
    "DAgger": ((1.02, 1.01), "60,000-100,000 expert labels"),
    "GAIL": ((0.96, 0.94), "10,000,000 env steps"),
}


def published_table() -> str:
    """The imitation library's published normalized scores, labelled as theirs."""
    header = ["algorithm (imitation library: theirs)", *PUBLISHED_ENVS, "their budget"]
    rows = [
        [algorithm, *(f"{x:.2f}" for x in scores), budget]
        for algorithm, (scores, budget) in PUBLISHED_SCORES.items()
    ]
    return markdown_table(header, rows)
