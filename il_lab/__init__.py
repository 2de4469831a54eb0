"""il_lab: imitation learning experiments from one Hydra command."""
