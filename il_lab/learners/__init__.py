"""Learners: each is built by Hydra from its config plus the runtime objects of a run."""
