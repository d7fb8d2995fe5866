"""What a run needs from its surroundings: device, processes (torchrun, SLURM), output folders, durable writes,
progress hooks, shipped files.
"""
