"""Pictures for people: attention panels and adversarial examples."""
