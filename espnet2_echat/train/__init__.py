"""Training helpers of the speech LLM: multi-task data loading, devices, LoRA merge."""
