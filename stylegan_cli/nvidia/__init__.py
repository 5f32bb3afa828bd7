"""NVIDIA's published networks as sgan checkpoints (`sgan import`): a restricted unpickler that reads their TF1 and
PyTorch pickles as plain data, and the mapping of each format's variables onto sgan's networks."""
