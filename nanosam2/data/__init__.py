"""SA-1B data for distillation and calibration: download, chunk discovery, the training set.

``sa1b_files`` (torch-free) finds images in chunk folders; ``dataset`` is the torch
``Dataset`` with the seed's RandomResizedCrop(1024) + ImageNet normalisation;
``download_sa1`` fetches and unpacks chunks from Meta's links file. (The bundled sample image
and synthetic clip are ``nanosam2.samples``.)
"""
