"""One imitation-learning run: python run.py [env=...] [expert=...] [learner=...] [key=value]."""

import logging
import sys

import hydra
from omegaconf import DictConfig

from il_lab import pipeline
from il_lab.errors import ConfigError


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    try:
        return pipeline.run(cfg)
    except ConfigError as error:  # a user's mistake: one line, no traceback
        logging.getLogger("il_lab").error("%s", error)
        sys.exit(2)


if __name__ == "__main__":
    main()
