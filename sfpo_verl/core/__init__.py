"""The SFPO core: the framework-free algorithm (anchor, reposition, alpha schedule, entropy
switch), the SFPO update inside verl's FSDP actor worker, and the trainer, its config and
start-up checks. Everything a GPU run of SFPO needs, and nothing else."""
