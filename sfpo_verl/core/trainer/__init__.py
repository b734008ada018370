"""The SFPO trainer: config, validation, the PPOTrainerSync subclass and the task runner."""
