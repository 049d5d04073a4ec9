"""Next-note prediction with the 2017 report's sigmoid MLP (seed 000); entry: apps/next_note_mlp.py.

    data.py      tunes (CRE MIDI or Essen) -> notes -> one example per note -> one-hot features
    model.py     the MLP (Dense -> Sigmoid ... -> Dense(88)) and its checkpoints
    train.py     held-out scores, the most-frequent and bigram baselines, the `train` command
    generate.py  note-by-note sampling on a held-out tune's rhythm, MIDI, piano roll; `generate`
"""
