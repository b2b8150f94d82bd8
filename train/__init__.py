"""PyTorch training: reference CycleGAN networks and loop, torchvision segmenters, checkpoints."""
