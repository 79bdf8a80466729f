"""Local LoRA training: base models, the training job, adapters, evaluation and aggregation."""
