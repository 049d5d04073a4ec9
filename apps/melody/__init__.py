"""The two Essen folk-song apps: the melody LSTM (apps/melody_lstm.py) and the melody VAEs
(apps/melody_vae.py).

    data.py          songs -> held-out split; LSTM token streams (Vocab, stream, windows);
                     VAE event codes (song_codes, segments, normalise, to_melody)
    lstm_model.py    MelodyLSTM: one-hot -> LSTM -> dropout -> dense, and its checkpoint loader
    lstm_train.py    the `train` command: held-out scores, the bigram baseline, the training loop
    lstm_generate.py primes (tokens, ABC, "demo"), sampling, MIDI + piano roll; `generate`
    vae_model.py     MelodyVAE (MLP encoder -> VariationalBottleneck -> MLP decoder), VAELoss
    vae_train.py     presets, reconstruction accuracy, baselines, the `train` command
    vae_generate.py  sampling and interpolation to MIDI; the `sample` and `interpolate` commands
    plots.py         curves (via apps.common.runs.plot_curves), piano roll, reconstruction
"""
