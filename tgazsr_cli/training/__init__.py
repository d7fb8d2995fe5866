"""The adversarial fine-tuning loop: epochs, schedule, precision, step bookkeeping, exact resume."""
