"""Voice auto-encoders and VAEs on FSDD spectrograms (seed 003); entry: apps/voice_vae.py.

    data.py        FSDD recordings -> dB images and hops; feature protocols, split, one-hot digits
    model.py       SpectrogramAE (dense / conv; AE, VAE on nnscratch.VariationalBottleneck, CVAE),
                   AELoss, the model table and the seed's test MSEs
    checkpoint.py  save / load / find checkpoints, latent statistics, image -> sound
    train.py       fit, evaluate, one model of a run, the `train` command
    summary.py     the run's summary.json, rebuilt from its checkpoints
    plots.py       spectrogram grids with their WAVs, curves, latent codes, reconstructions
    generate.py    the `reconstruct`, `sample` and `interpolate` commands
    judge.py       the digit classifier (apps/digits) listens; the `judge` command
"""
