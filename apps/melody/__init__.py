"""The two Essen folk-song apps: the melody LSTM (apps/melody_lstm.py, with the `judge` command
that compares every melody generator) and the melody VAEs (apps/melody_vae.py).

    data.py          songs -> held-out split (and its two training halves); LSTM token streams
                     (Vocab, stream, windows); VAE event codes (song_codes, segments, cut,
                     transpose_segments, normalise, to_classes, from_classes, to_melody)
    lstm_model.py    MelodyLSTM: one-hot -> LSTM -> dropout -> dense, and its checkpoint loader
    lstm_train.py    the `train` command: held-out scores, the bigram baseline, the training loop
    lstm_generate.py primes (tokens, ABC, "demo"), sampling, whole songs at once (LSTM and
                     bigram), MIDI + piano roll + score + WAV; `generate`
    vae_model.py     MelodyVAE (the slides' sigmoid MLP), CategoricalMLPVAE, their losses
    vae_seq_model.py SeqVAE: BiLSTM encoder -> VariationalBottleneck -> LSTM decoder
    vae_build.py     one set of calls for the three VAEs: build, load, codes in and out, prior
    vae_train.py     presets, reconstruction accuracy, baselines, the `train` command
    vae_generate.py  sampling, interpolation and its smoothness; the `sample` and `interpolate`
                     commands
    judges.py        the six judges of generated melodies (key, pitch classes, intervals, bars,
                     plagiarism, cross-entropy under an independent n-gram)
    judge_run.py     the melody LSTM's `judge` command: every generator against held-out songs
    plots.py         curves (via apps.common.runs.plot_curves), the VAE's reconstruction
"""
