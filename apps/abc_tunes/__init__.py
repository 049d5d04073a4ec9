"""The ABC tune app (the project's main job): a character LSTM on folk tunes in ABC notation;
entry: apps/abc_lstm.py.

    data.py     tunes.jsonl / .abc -> prepared text (train.txt, val.txt) + Vocab; training
                windows (WindowSampler) and validation batches (tune_batches)
    model.py    ModelConfig and MusicRNN: Embedding -> LSTM stack -> Dropout -> Dense
    train.py    presets, the validation score, the progress bar, the Trainer (linear, cosine
                or plateau schedule, exact resume), the `train` and `run` commands
    sample.py   load_model, temperature sampling (optionally meter-aware:
                apps/music/abc_meter.py), the `sample` command
    publish.py  judging the tunes and writing samples.abc, sample_NN.mid / .svg / .wav
    page.py     index.html: curves, figures, and every tune as score, sound and text

The path of the data: tunes.jsonl -> prepared text -> windows -> model -> checkpoint (best.npz)
-> sampled tunes -> samples.abc, sample_NN.mid (+ .svg score, .wav recording) -> index.html.
"""
